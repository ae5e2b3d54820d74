package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Merged reads several partitions as one: a pipeline with several sources
// (a union, or a join, whose two sides must meet in the same keyed state)
// or with stages over a Kafka topic (whose later stages must see every
// partition's rows) sees one stream of batches, each saying which source
// (Batch.Source) and which of its partitions (Batch.Stream) it came from.
// Its position keeps each partition's.
//
// A source that names its partitions (PartitionLister: Kafka) must hand it
// every one: Merged waits for the whole assignment, and fails its reads
// once one of them is taken away (revoked or lost to another process of
// the group), since the one partition it makes can't be split between
// processes.
type Merged struct {
	streams []*stream
	sources []Source
	next    int

	mu sync.Mutex
	// assigned: the partitions the source being started has assigned
	assigned []*stream
	named    func(id string) *stream
	gone     string             // the first partition taken away
	reading  context.CancelFunc // ends the Read in progress when one goes
}

// stream is one partition of a Merged.
type stream struct {
	name string // the source's name in the pipeline ("" for its one source)
	key  string // the partition's name in positions and event times
	part Partition
	pos  Position
	// ended: the partition ended for good (files, generators)
	ended bool
}

// MergedInput is one source of a Merged. Name gives the pipeline's name
// for the source of each partition it assigns (a Kafka source of several
// topics assigns partitions of several named sources).
type MergedInput struct {
	Source Source
	Name   func(partitionID string) string
}

// MergedAssignTimeout bounds the wait for a source's whole assignment.
var MergedAssignTimeout = time.Minute

// NewMerged opens the named sources as one partition.
func NewMerged(ctx context.Context, sources map[string]Source) (*Merged, error) {
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Strings(names)
	inputs := make([]MergedInput, len(names))
	for i, name := range names {
		inputs[i] = MergedInput{Source: sources[name], Name: func(string) string { return name }}
	}
	return NewMergedInputs(ctx, inputs)
}

// NewMergedInputs opens inputs as one partition. A source without named
// partitions (files, directories, generators) must assign exactly one
// when started; one with them (Kafka) all of them within
// MergedAssignTimeout.
func NewMergedInputs(ctx context.Context, inputs []MergedInput) (*Merged, error) {
	m := &Merged{}
	for _, in := range inputs {
		if err := m.start(ctx, in); err != nil {
			m.closeSources()
			return nil, err
		}
	}
	sort.Slice(m.streams, func(i, j int) bool { return m.streams[i].key < m.streams[j].key })
	return m, nil
}

// start starts one input and takes the partitions it assigns.
func (m *Merged) start(ctx context.Context, in MergedInput) error {
	m.mu.Lock()
	m.assigned = nil
	lister, whole := in.Source.(PartitionLister)
	m.named = func(id string) *stream {
		name := in.Name(id)
		st := &stream{name: name, key: name}
		if whole {
			st.key = name + "@" + id
		}
		return st
	}
	m.mu.Unlock()
	m.sources = append(m.sources, in.Source)
	if err := in.Source.Start(ctx, m); err != nil {
		return err
	}
	if !whole {
		m.mu.Lock()
		n := len(m.assigned)
		m.mu.Unlock()
		if n != 1 {
			return fmt.Errorf("source %s: has %d partitions: a pipeline with several sources reads one partition of each file, directory or generator source", in.Name(""), n)
		}
		m.collect()
		return nil
	}
	all, err := lister.AllPartitions(ctx)
	if err != nil {
		return err
	}
	if err := m.await(ctx, all); err != nil {
		return err
	}
	m.collect()
	return nil
}

// await waits until every partition of ids is assigned.
func (m *Merged) await(ctx context.Context, ids []string) error {
	deadline := time.Now().Add(MergedAssignTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var missing []string
		m.mu.Lock()
		have := map[string]bool{}
		for _, st := range m.assigned {
			have[st.part.ID()] = true
		}
		for _, id := range ids {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		m.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for the consumer group to assign this process %s (of %d partitions, %d missing): a pipeline with stages or several sources reads every partition of its Kafka topics in one process so far; is another process of the group running?",
				MergedAssignTimeout, strings.Join(missing, ", "), len(ids), len(missing))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// collect takes the partitions the source started has assigned; any it
// assigns later are not read (only a rebalance would, after taking one
// away, which ends the reads).
func (m *Merged) collect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streams = append(m.streams, m.assigned...)
	m.assigned = nil
}

// Assign implements Listener: a source hands Merged a partition.
func (m *Merged) Assign(p Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.named(p.ID())
	st.part = p
	m.assigned = append(m.assigned, st)
}

// Revoke implements Listener: a partition taken away ends the reads.
func (m *Merged) Revoke(id string) { m.lose(id) }

// Lose implements Listener, as Revoke.
func (m *Merged) Lose(id string) { m.lose(id) }

func (m *Merged) lose(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone == "" {
		m.gone = id
	}
	if m.reading != nil {
		m.reading()
	}
}

// errGone is why reads stop once a partition was taken away.
func (m *Merged) errGone() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone == "" {
		return nil
	}
	return fmt.Errorf("%s %w (did another process join the consumer group?): a pipeline with stages or several sources reads every partition of its Kafka topics in one process so far; stop the other process and run this one again (it resumes from its last checkpoint)", m.gone, errTakenAway)
}

var errTakenAway = errors.New("was taken from this process")

// label names the stream in errors: its source and partition.
func (st *stream) label() string {
	if st.name == "" {
		return st.part.ID()
	}
	return st.key
}

// Streams names the partitions Merged reads, as Batch.Stream does: each
// has its own event time.
func (m *Merged) Streams() []string {
	keys := make([]string, len(m.streams))
	for i, st := range m.streams {
		keys[i] = st.key
	}
	return keys
}

// ID names the partition by its sources' partitions.
func (m *Merged) ID() string {
	ids := make([]string, len(m.streams))
	for i, st := range m.streams {
		ids[i] = st.name + "=" + st.part.ID()
		if st.name == "" {
			ids[i] = st.part.ID()
		}
	}
	if len(m.streams) > 0 && m.streams[0].name == "" {
		return "all(" + strings.Join(ids, ",") + ")"
	}
	return "sources(" + strings.Join(ids, ",") + ")"
}

// Seek moves every partition to its position in pos (nil: their starts).
func (m *Merged) Seek(pos Position) error {
	if err := m.errGone(); err != nil {
		return err
	}
	byKey := map[string]Position{}
	if pos != nil {
		if err := json.Unmarshal(pos, &byKey); err != nil {
			return fmt.Errorf("several partitions: position %q: %w", pos, err)
		}
	}
	for _, st := range m.streams {
		if err := st.part.Seek(byKey[st.key]); err != nil {
			return fmt.Errorf("%s: %w", st.label(), err)
		}
		st.pos, st.ended = byKey[st.key], false
	}
	return nil
}

// Read reads the partitions in turn, a batch at a time.
func (m *Merged) Read(ctx context.Context) (Batch, error) {
	for tried := 0; tried < len(m.streams); tried++ {
		st := m.streams[m.next]
		m.next = (m.next + 1) % len(m.streams)
		if st.ended {
			continue
		}
		b, err := m.readOne(ctx, st)
		if errors.Is(err, ErrEndOfInput) {
			st.ended = true
			return Batch{Source: st.name, Stream: st.key, SourceEnded: true, End: m.position(), CaughtUp: m.allEnded()}, nil
		}
		if errors.Is(err, errTakenAway) {
			return b, err
		}
		if err != nil {
			return b, fmt.Errorf("%s: %w", st.label(), err)
		}
		if len(b.Records) == 0 && b.CaughtUp {
			continue
		}
		if b.End != nil {
			st.pos = b.End
		}
		b.Source, b.Stream, b.End, b.CaughtUp = st.name, st.key, m.position(), false
		return b, nil
	}
	if m.allEnded() {
		return Batch{}, ErrEndOfInput
	}
	return Batch{CaughtUp: true, End: m.position()}, nil
}

// readOne reads st, under a context a partition taken away cancels.
func (m *Merged) readOne(ctx context.Context, st *stream) (Batch, error) {
	if err := m.errGone(); err != nil {
		return Batch{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.reading = cancel
	m.mu.Unlock()
	b, err := st.part.Read(rctx)
	m.mu.Lock()
	m.reading = nil
	m.mu.Unlock()
	if gerr := m.errGone(); gerr != nil && ctx.Err() == nil {
		return Batch{}, gerr
	}
	return b, err
}

func (m *Merged) allEnded() bool {
	for _, st := range m.streams {
		if !st.ended {
			return false
		}
	}
	return true
}

func (m *Merged) position() Position {
	byKey := map[string]Position{}
	for _, st := range m.streams {
		if st.pos != nil {
			byKey[st.key] = st.pos
		}
	}
	b, _ := json.Marshal(byKey)
	return b
}

// Describe renders each partition's position.
func (m *Merged) Describe(pos Position) string {
	byKey := map[string]Position{}
	if err := json.Unmarshal(pos, &byKey); err != nil {
		return fmt.Sprintf("unreadable position %q", pos)
	}
	var out []string
	for _, st := range m.streams {
		if sp, ok := byKey[st.key]; ok {
			out = append(out, st.key+": "+st.part.Describe(sp))
		}
	}
	return strings.Join(out, "; ")
}

// Close closes every source (which closes their partitions, and has a
// consumer group's member leave it).
func (m *Merged) Close() error { return m.closeSources() }

func (m *Merged) closeSources() error {
	var errs []error
	for _, s := range m.sources {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
