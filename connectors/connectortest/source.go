package connectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// SourceOptions tune TestSource to what a source can do.
type SourceOptions struct {
	// MaxRecords stops the first read of a partition after this many
	// records; needed for unbounded sources. 0 reads to caught-up or end.
	MaxRecords int
	// Timeout bounds each read of the suite; default 10s.
	Timeout time.Duration
	// NoSeek skips the restart checks, for sources that cannot rewind
	// (stdin).
	NoSeek bool
	// NoRewind skips seeking the first run's partition back in process,
	// for sources that can only resume in a new process.
	NoRewind bool
	// Reopen, when set, is called between the first read and each restart
	// (to refill stdin, for example).
	Reopen func(t *testing.T)
}

// ReadResult is what a partition yielded in one run.
type ReadResult struct {
	Batches []connectors.Batch
	// Ended says the partition returned ErrEndOfInput.
	Ended bool
}

// Records flattens the batches' records, each with the place it came from.
func (r ReadResult) Records() []Located {
	var out []Located
	for _, b := range r.Batches {
		for i, rec := range b.Records {
			out = append(out, Located{Record: rec, Where: b.Where, Unit: b.Unit, Locate: b.Locate(i)})
		}
	}
	return out
}

// Located is a record with its batch's Where and Unit.
type Located struct {
	connectors.Record
	Where, Unit, Locate string
}

// Listener collects the partitions a source assigns, for tests.
type Listener struct {
	mu      sync.Mutex
	parts   map[string]connectors.Partition
	order   []string
	revoked []string
	changed chan struct{} // closed (and replaced) at every Assign and Revoke
}

// NewListener returns an empty Listener.
func NewListener() *Listener {
	return &Listener{parts: map[string]connectors.Partition{}, changed: make(chan struct{})}
}

// Assign records p.
func (l *Listener) Assign(p connectors.Partition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.parts[p.ID()]; !dup {
		l.order = append(l.order, p.ID())
	}
	l.parts[p.ID()] = p
	l.notify()
}

// notify wakes WaitPartitions; l.mu is held.
func (l *Listener) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// WaitPartitions waits until at least n partitions are assigned, and fails
// t if that takes longer than timeout.
func (l *Listener) WaitPartitions(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		have, changed := len(l.parts), l.changed
		l.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d of %d partitions assigned after %s", have, n, timeout)
		}
	}
}

// Revoke records that id was revoked.
func (l *Listener) Revoke(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked = append(l.revoked, id)
	delete(l.parts, id)
	l.notify()
}

// Lose implements connectors.Listener; the suite treats it as Revoke.
func (l *Listener) Lose(id string) { l.Revoke(id) }

// Partitions returns the assigned partitions in assignment order.
func (l *Listener) Partitions() []connectors.Partition {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []connectors.Partition
	for _, id := range l.order {
		if p, ok := l.parts[id]; ok {
			out = append(out, p)
		}
	}
	return out
}

// Partition returns the partition with id, or nil.
func (l *Listener) Partition(id string) connectors.Partition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parts[id]
}

// Start starts src with a new Listener and fails t if that fails or assigns
// nothing. The source is closed when the test ends.
func Start(t *testing.T, src connectors.Source) *Listener {
	t.Helper()
	l := NewListener()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for _, p := range l.Partitions() {
			_ = p.Close()
		}
		_ = src.Close()
	})
	if err := src.Start(ctx, l); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if len(l.Partitions()) == 0 {
		t.Fatalf("Start assigned no partition")
	}
	return l
}

// ReadAll reads p until it is caught up (a batch with CaughtUp set), ends,
// or has yielded max records (max 0: no limit). It fails t on an error.
func ReadAll(t *testing.T, p connectors.Partition, max int, timeout time.Duration) ReadResult {
	t.Helper()
	res, err := readAll(p, max, timeout)
	if err != nil {
		t.Fatalf("partition %s: %v", p.ID(), err)
	}
	return res
}

func readAll(p connectors.Partition, max int, timeout time.Duration) (ReadResult, error) {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var res ReadResult
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		b, err := p.Read(ctx)
		cancel()
		if errors.Is(err, connectors.ErrEndOfInput) {
			res.Ended = true
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read after %d records: %w", n, err)
		}
		if len(b.Records) > 0 && len(b.End) == 0 {
			return res, fmt.Errorf("batch of %d records at %s has no End position", len(b.Records), b.Where)
		}
		if len(b.Records) > 0 && (b.Where == "" || b.Unit == "") {
			return res, fmt.Errorf("batch of %d records has empty Where %q or Unit %q", len(b.Records), b.Where, b.Unit)
		}
		res.Batches = append(res.Batches, b)
		n += len(b.Records)
		if b.CaughtUp || (max > 0 && n >= max) {
			return res, nil
		}
	}
}

// TestSource checks a source against the engine's contract: every
// partition reads to caught-up or end, every batch has an End, and both a
// restart (a new source) and a rewind (the same partition, read past it)
// that Seek to the End of a batch — the first, one in the middle, the last,
// a caught-up one, or nil for the start — yield exactly the records after
// it, with the same values, keys, sequence numbers and places.
func TestSource(t *testing.T, open func(t *testing.T) connectors.Source, opts SourceOptions) {
	t.Helper()
	l := Start(t, open(t))
	first := map[string]ReadResult{}
	for _, p := range l.Partitions() {
		res := ReadAll(t, p, opts.MaxRecords, opts.Timeout)
		if len(res.Records()) == 0 {
			t.Fatalf("partition %s yielded no records", p.ID())
		}
		if s := p.Describe(nil); s == "" {
			t.Errorf("partition %s: Describe(nil) is empty", p.ID())
		}
		for _, b := range res.Batches {
			if len(b.End) > 0 && p.Describe(b.End) == "" {
				t.Errorf("partition %s: Describe(%s) is empty", p.ID(), b.End)
			}
		}
		first[p.ID()] = res
	}
	if opts.NoSeek {
		return
	}
	for _, p := range l.Partitions() {
		id, res := p.ID(), first[p.ID()]
		all := res.Records()
		for _, cut := range cutsOf(res) {
			var pos connectors.Position
			done := 0
			if cut >= 0 {
				pos = res.Batches[cut].End
				for _, b := range res.Batches[:cut+1] {
					done += len(b.Records)
				}
			}
			want := all[done:]
			// An unbounded source is read for as many records as want
			// holds; -1 says there is nothing to read.
			max := 0
			if opts.MaxRecords > 0 {
				max = len(want)
				if max == 0 {
					max = -1
				}
			}
			t.Run(fmt.Sprintf("%s/restart-after-batch-%d-%d-records", id, cut, done), func(t *testing.T) {
				if opts.Reopen != nil {
					opts.Reopen(t)
				}
				p2 := Start(t, open(t)).Partition(id)
				if p2 == nil {
					t.Fatalf("reopened source has no partition %s", id)
				}
				if pos != nil {
					if err := p2.Seek(pos); err != nil {
						t.Fatalf("Seek(%s): %v", pos, err)
					}
				}
				checkTail(t, p2, pos, want, max, opts.Timeout)
			})
			if opts.NoRewind {
				continue
			}
			// The engine restarts a failed partition in process by seeking
			// the same partition object back, so Seek must forget what was
			// read since.
			t.Run(fmt.Sprintf("%s/rewind-to-batch-%d-%d-records", id, cut, done), func(t *testing.T) {
				if err := p.Seek(pos); err != nil {
					t.Fatalf("rewind Seek(%s): %v", pos, err)
				}
				checkTail(t, p, pos, want, max, opts.Timeout)
			})
		}
	}
}

// cutsOf picks the batches whose End a restart resumes from: -1 for the
// start (Seek(nil)), the first, a middle and the last batch with records,
// and a trailing caught-up batch, whose End the engine checkpoints too.
func cutsOf(res ReadResult) []int {
	var withRecords []int
	for i, b := range res.Batches {
		if len(b.Records) > 0 {
			withRecords = append(withRecords, i)
		}
	}
	cuts := []int{-1}
	if n := len(withRecords); n > 0 {
		cuts = append(cuts, withRecords[0], withRecords[n/2], withRecords[n-1])
	}
	if last := len(res.Batches) - 1; last >= 0 && len(res.Batches[last].End) > 0 {
		cuts = append(cuts, last)
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

// checkTail reads p and compares what it yields with want.
func checkTail(t *testing.T, p connectors.Partition, pos connectors.Position, want []Located, max int, timeout time.Duration) {
	t.Helper()
	if max < 0 {
		return
	}
	got := ReadAll(t, p, max, timeout).Records()
	if max > 0 && len(got) > len(want) {
		got = got[:len(want)]
	}
	if err := Same(want, got); err != nil {
		t.Fatalf("after Seek(%s): %v", pos, err)
	}
}

// Same reports the first difference between two record runs.
func Same(want, got []Located) error {
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		if !bytes.Equal(w.Value, g.Value) || !bytes.Equal(w.Key, g.Key) || w.Seq != g.Seq || w.Where != g.Where || w.Unit != g.Unit {
			return fmt.Errorf("record %d differs:\n got  %s %q\n want %s %q", i, g.Locate, g.Value, w.Locate, w.Value)
		}
	}
	if len(want) != len(got) {
		return fmt.Errorf("got %d records, want %d", len(got), len(want))
	}
	return nil
}
