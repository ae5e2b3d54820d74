package gen

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSource("gen", func(t connectors.Target) (connectors.Source, error) {
		name := t.Path
		if name == "" {
			name = t.Host
		}
		return Open(name, t)
	}, "seed", "count", "rate", "bad", "sensors", "interval", "start", "delay", "gap", "spike", "stream", "event-rate")
}

// Config is what a gen:NAME source was opened with.
type Config struct {
	// Seed picks the random stream; default 1.
	Seed int64
	// Count is how many records to yield before ErrEndOfInput; 0 never ends.
	Count int64
	// Rate caps records per second; 0 is as fast as possible.
	Rate float64
	// Bad is the fraction of malformed records, 0..1.
	Bad float64
}

// Open opens the gen source for generator name with the parameters seed,
// count, rate and bad of t.
func Open(name string, t connectors.Target) (*Source, error) {
	var c Config
	var err error
	if c.Seed, err = t.IntParam("seed", 1, -1<<63); err != nil {
		return nil, err
	}
	if c.Count, err = t.IntParam("count", 0, 0); err != nil {
		return nil, err
	}
	if c.Rate, err = t.FloatParam("rate", 0, 0, 1e12); err != nil {
		return nil, err
	}
	if c.Bad, err = t.FloatParam("bad", 0, 0, 1); err != nil {
		return nil, err
	}
	if name, err = withParams(name, t.Params); err != nil {
		return nil, err
	}
	return New(name, c)
}

// New opens the gen source for generator name, which may carry the
// generator's parameters ("sensors?sensors=10"; see Lookup).
func New(name string, c Config) (*Source, error) {
	g, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if c.Count < 0 || c.Rate < 0 || c.Bad < 0 || c.Bad > 1 {
		return nil, fmt.Errorf("gen:%s: count %d and rate %g must not be negative, bad %g must be in [0, 1]", name, c.Count, c.Rate, c.Bad)
	}
	base, _, _ := strings.Cut(name, "?")
	return &Source{connectors.Single{Partition: &partition{name: name, id: "gen:" + base, gen: g, cfg: c}}}, nil
}

// Source is a gen:NAME source: one partition of generated records.
type Source struct{ connectors.Single }

var _ connectors.Source = (*Source)(nil)

type partition struct {
	name, id string
	gen      Generator
	cfg      Config
	next     int64
	blk      *block
	// pacing: records read since start, and when reading started
	start time.Time
	sent  int64
}

var _ connectors.Partition = (*partition)(nil)

// position is what a checkpoint stores: the next index, and the settings
// that must match for that index to mean the same record.
type position struct {
	Name  string  `json:"name"`
	Seed  int64   `json:"seed"`
	Count int64   `json:"count"`
	Bad   float64 `json:"bad"`
	Next  int64   `json:"next"`
}

func (p *partition) ID() string { return p.id }

func (p *partition) pos() connectors.Position {
	b, _ := json.Marshal(position{Name: p.name, Seed: p.cfg.Seed, Count: p.cfg.Count, Bad: p.cfg.Bad, Next: p.next})
	return b
}

func (p *partition) Seek(pos connectors.Position) error {
	if len(pos) == 0 {
		p.next = 0
		return nil
	}
	var q position
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Errorf("%s: bad position %q: %w", p.id, pos, err)
	}
	if q.Name != p.name || q.Seed != p.cfg.Seed || q.Count != p.cfg.Count || q.Bad != p.cfg.Bad {
		return fmt.Errorf("%s: the checkpoint was taken with gen:%s seed=%d count=%d bad=%g, this run has gen:%s seed=%d count=%d bad=%g: "+
			"restart with the same parameters or a fresh state directory",
			p.id, q.Name, q.Seed, q.Count, q.Bad, p.name, p.cfg.Seed, p.cfg.Count, p.cfg.Bad)
	}
	if q.Next < 0 || (p.cfg.Count > 0 && q.Next > p.cfg.Count) {
		return fmt.Errorf("%s: position %d is outside [0, %d]", p.id, q.Next, p.cfg.Count)
	}
	p.next = q.Next
	return nil
}

func (p *partition) Read(ctx context.Context) (connectors.Batch, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Batch{}, err
	}
	if p.cfg.Count > 0 && p.next >= p.cfg.Count {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	bn := p.next / BlockSize
	if p.blk == nil || p.blk.n != bn {
		hint := 0
		if p.blk != nil {
			hint = len(p.blk.buf) + len(p.blk.buf)/8
		}
		p.blk = makeBlock(p.gen, p.cfg.Seed, bn, p.cfg.Bad, hint)
	}
	end := (bn + 1) * BlockSize
	if p.cfg.Count > 0 {
		end = min(end, p.cfg.Count)
	}
	n := end - p.next
	if p.cfg.Rate > 0 {
		// Batches of about 1/20 s keep latency low at any rate.
		n = max(1, min(n, int64(p.cfg.Rate/20)))
		if err := p.pace(ctx, n); err != nil {
			return connectors.Batch{}, err
		}
	}
	recs := make([]connectors.Record, n)
	for j := range recs {
		i := p.next + int64(j)
		recs[j] = connectors.Record{Value: p.blk.line(i), Seq: i}
	}
	p.next += n
	p.sent += n
	return connectors.Batch{Records: recs, Where: p.id, Unit: "record", End: p.pos()}, nil
}

// pace waits until n more records keep the rate since the first read.
func (p *partition) pace(ctx context.Context, n int64) error {
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	due := p.start.Add(time.Duration(float64(p.sent+n) / p.cfg.Rate * float64(time.Second)))
	wait := due.Sub(now)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *partition) Describe(pos connectors.Position) string {
	if len(pos) == 0 {
		return p.id + " from record 0"
	}
	var q position
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Sprintf("%s bad position %q", p.id, pos)
	}
	return fmt.Sprintf("gen:%s seed=%d next record %d", q.Name, q.Seed, q.Next)
}

// Offset is the number of the next record pos reads.
func (p *partition) Offset(pos connectors.Position) (int64, bool) {
	if len(pos) == 0 {
		return 0, true
	}
	var q position
	if err := json.Unmarshal(pos, &q); err != nil {
		return 0, false
	}
	return int64(q.Next), true
}

func (p *partition) Close() error { return nil }
