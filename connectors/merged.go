package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Merged reads several named sources as one partition: a pipeline with
// several sources (a union, or a join, whose two sides must meet in the
// same keyed state) sees one stream of batches, each saying which source
// it came from. Each named source must have exactly one partition (files,
// directories, generators); its position is kept per source.
type Merged struct {
	names []string
	parts []Partition
	pos   []Position
	ended []bool
	next  int
}

// NewMerged opens the named sources as one partition. Each must assign
// exactly one partition when started.
func NewMerged(ctx context.Context, sources map[string]Source) (*Merged, error) {
	m := &Merged{}
	for name := range sources {
		m.names = append(m.names, name)
	}
	sort.Strings(m.names)
	for _, name := range m.names {
		var l collect
		if err := sources[name].Start(ctx, &l); err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		if len(l.parts) != 1 {
			return nil, fmt.Errorf("source %s: has %d partitions: a pipeline with several sources reads one partition of each (files, directories, generators) for now", name, len(l.parts))
		}
		m.parts = append(m.parts, l.parts[0])
	}
	m.pos = make([]Position, len(m.parts))
	m.ended = make([]bool, len(m.parts))
	return m, nil
}

type collect struct{ parts []Partition }

func (c *collect) Assign(p Partition) { c.parts = append(c.parts, p) }
func (c *collect) Revoke(string)      {}
func (c *collect) Lose(string)        {}

// ID names the partition by its sources' partitions.
func (m *Merged) ID() string {
	ids := make([]string, len(m.parts))
	for i, p := range m.parts {
		ids[i] = m.names[i] + "=" + p.ID()
	}
	return "sources(" + strings.Join(ids, ",") + ")"
}

// Seek moves every source to its position in pos (nil: their starts).
func (m *Merged) Seek(pos Position) error {
	byName := map[string]Position{}
	if pos != nil {
		if err := json.Unmarshal(pos, &byName); err != nil {
			return fmt.Errorf("several sources: position %q: %w", pos, err)
		}
	}
	for i, p := range m.parts {
		if err := p.Seek(byName[m.names[i]]); err != nil {
			return fmt.Errorf("source %s: %w", m.names[i], err)
		}
		m.pos[i], m.ended[i] = byName[m.names[i]], false
	}
	return nil
}

// Read reads the sources in turn, a batch at a time.
func (m *Merged) Read(ctx context.Context) (Batch, error) {
	for tried := 0; tried < len(m.parts); tried++ {
		i := m.next
		m.next = (m.next + 1) % len(m.parts)
		if m.ended[i] {
			continue
		}
		b, err := m.parts[i].Read(ctx)
		if errors.Is(err, ErrEndOfInput) {
			m.ended[i] = true
			return Batch{Source: m.names[i], SourceEnded: true, End: m.position(), CaughtUp: m.allEnded()}, nil
		}
		if err != nil {
			return b, fmt.Errorf("source %s: %w", m.names[i], err)
		}
		if len(b.Records) == 0 && b.CaughtUp {
			continue
		}
		if b.End != nil {
			m.pos[i] = b.End
		}
		b.Source, b.End, b.CaughtUp = m.names[i], m.position(), false
		return b, nil
	}
	if m.allEnded() {
		return Batch{}, ErrEndOfInput
	}
	return Batch{CaughtUp: true, End: m.position()}, nil
}

func (m *Merged) allEnded() bool {
	for _, e := range m.ended {
		if !e {
			return false
		}
	}
	return true
}

func (m *Merged) position() Position {
	byName := map[string]Position{}
	for i, p := range m.pos {
		if p != nil {
			byName[m.names[i]] = p
		}
	}
	b, _ := json.Marshal(byName)
	return b
}

// Describe renders each source's position.
func (m *Merged) Describe(pos Position) string {
	byName := map[string]Position{}
	if err := json.Unmarshal(pos, &byName); err != nil {
		return fmt.Sprintf("unreadable position %q", pos)
	}
	var out []string
	for i, p := range m.parts {
		if sp, ok := byName[m.names[i]]; ok {
			out = append(out, m.names[i]+": "+p.Describe(sp))
		}
	}
	return strings.Join(out, "; ")
}

// Close closes every source's partition.
func (m *Merged) Close() error {
	var errs []error
	for _, p := range m.parts {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
