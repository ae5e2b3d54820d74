package actors_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

const restoreScript = `
return {
  parse = eddy.json { id = "string" },
  key = "id",
  aggregate = { count = eddy.count() },
  emit = "update",
}`

// BenchmarkRestore takes over a partition whose changelog holds
// EDDY_BENCH_KEYS (default 1,000,000) keys' counts, in one process and
// without Kafka: a run with an empty store restores the partition from
// an in-memory changelog, takes in one new record, writes its first
// checkpoint (every restored entry goes to the store) and ends. Beside it,
// the plain-Go baseline holds the same changes in a map, the least a
// restore that keeps every key in memory does. It prints CPU, allocations
// and peak heap per key for both, and checks the run's result (the new
// record's count) and the store's keys.
//
// It also times the run's two phases, as just bench-cluster does over
// Kafka: from the run's start to serving (a restored key's row answered
// by Handle.State, complete: the "restores in < 5 s"), and to the
// first checkpoint holding every restored key (the local store has the
// partition; a restart reads none of the changelog). EDDY_BENCH_PROFILE=DIR
// writes a CPU profile of each phase there (restore-serving.pprof,
// restore-stored.pprof).
func BenchmarkRestore(b *testing.B) {
	keys := testenv.BenchSize(b, "EDDY_BENCH_KEYS", 1_000_000)
	p, err := scripting.LoadSource("restore.lua", []byte(restoreScript))
	if err != nil {
		b.Fatal(err)
	}
	cl := &memio.Changelog{}
	id := func(i int) string { return fmt.Sprintf("id-%09d", i) }
	for i := range keys {
		cl.Write("mem", []byte("agg/mem\x00"+id(i)), []byte(`[["`+id(i)+`"],[1]]`))
	}
	marker := connectors.ChangelogMarker{Checkpoint: 1, Position: connectors.Position("0"), Node: "filler"}
	if _, err := cl.Commit(context.Background(), map[string]connectors.ChangelogMarker{"mem": marker}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		base := benchrun.Measure("baseline: the changes in a Go map", int64(keys), func() {
			m := map[string][]byte{}
			_, _, err := cl.Restore(context.Background(), "mem", 0, func(k, v []byte) error {
				m[string(k[len("agg/mem\x00"):])] = v
				return nil
			}, nil)
			if err != nil || len(m) != keys {
				b.Fatalf("baseline: %d keys (%v)", len(m), err)
			}
		})
		store, err := state.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		results := &memio.Sink{}
		stats := &actors.Stats{}
		src := &heldSource{line: `{"id":"` + id(keys/2) + `"}`, release: make(chan struct{})}
		var phases restorePhases
		eddy := benchrun.Measure("eddy: restore, one record, first checkpoint", int64(keys), func() {
			ready := make(chan *actors.Handle, 1)
			watched := make(chan error, 1)
			go func() {
				watched <- phases.watch(ready, store, id(keys/3), int64(keys))
				close(src.release) // the run ends once both are measured
			}()
			_, err = actors.Run(context.Background(), actors.Config{Pipeline: p, Source: src,
				Store: store, Results: results, Changelog: cl, Shards: 2, Node: "bench", MaxErrors: -1, Stats: stats,
				OnReady: func(h *actors.Handle) { ready <- h }})
			if werr := <-watched; werr != nil && err == nil {
				err = werr
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		rows := results.Rows()
		if len(rows) == 0 || rows[len(rows)-1].Key != id(keys/2) || fmt.Sprint(rows[len(rows)-1].Fields[1].Value) != "2" {
			b.Fatalf("results %v, want %s counted twice", rows, id(keys/2))
		}
		cp, err := store.Last()
		if err != nil || cp.Keys < int64(keys) {
			b.Fatalf("the store's last checkpoint %+v (%v): want %d keys at least", cp, err, keys)
		}
		store.Close()
		benchrun.Print("restore of "+strconv.Itoa(keys)+" keys from an in-memory changelog (BenchmarkRestore)", base, eddy)
		fmt.Printf("  eddy: %.2f µs CPU, %.1f allocations and %.0f bytes of peak heap a key; %d changes restored\n",
			eddy.CPU.Seconds()*1e6/float64(keys), float64(eddy.Mallocs)/float64(keys), float64(eddy.PeakHeap)/float64(keys), stats.Restored.Load())
		phases.print(keys)
		b.ReportMetric(phases.serving.Seconds(), "serving-s")
		b.ReportMetric(phases.servingCPU.Seconds()*1e6/float64(keys), "serving-cpu-µs/key")
	}
}

// restorePhases is when a restoring run served and checkpointed, and the
// process's CPU time then, from the watch's start.
type restorePhases struct {
	serving, stored       time.Duration
	servingCPU, storedCPU time.Duration
}

// watch waits for the run's handle, then polls it every 10 ms: until
// key's row is answered by a complete State (each restored key has a
// count of 1), then until store's last checkpoint holds keys keys. Each
// wait gives up after 10 minutes, or 200 µs a key (a loaded machine gave
// a 10-million-key restore a fifth of a core).
func (ph *restorePhases) watch(ready <-chan *actors.Handle, store *state.Store, key string, keys int64) error {
	start, cpu0 := time.Now(), benchrun.CPU()
	var h *actors.Handle
	select {
	case h = <-ready:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("the run did not start within 10 minutes")
	}
	poll := func(what string, done func() (bool, error)) (time.Duration, time.Duration, error) {
		limit := max(10*time.Minute, time.Duration(keys)*200*time.Microsecond)
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			ok, err := done()
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", what, err)
			}
			if ok {
				return time.Since(start), benchrun.CPU() - cpu0, nil
			}
		}
		return 0, 0, fmt.Errorf("%s: not within %v", what, limit)
	}
	stop, err := profilePhase("restore-serving.pprof")
	if err != nil {
		return err
	}
	ph.serving, ph.servingCPU, err = poll("serving", func() (bool, error) {
		rows, err := h.State(context.Background(), key)
		if errors.Is(err, actors.ErrIncomplete) || len(rows) == 0 {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if got := fmt.Sprint(rows[0].Fields[1].Value); got != "1" {
			return false, fmt.Errorf("restored key %s counted %s, want 1", key, got)
		}
		return true, nil
	})
	stop()
	if err != nil {
		return err
	}
	if stop, err = profilePhase("restore-stored.pprof"); err != nil {
		return err
	}
	defer stop()
	ph.stored, ph.storedCPU, err = poll("the first checkpoint", func() (bool, error) {
		cp, err := store.Last()
		if errors.Is(err, state.ErrNoCheckpoint) {
			return false, nil
		}
		return err == nil && cp.Keys >= keys, err
	})
	return err
}

// profilePhase starts a CPU profile to EDDY_BENCH_PROFILE/name, when
// that is set, and returns its stop.
func profilePhase(name string) (stop func(), err error) {
	dir := os.Getenv("EDDY_BENCH_PROFILE")
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func (ph *restorePhases) print(keys int) {
	perKey := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(keys) }
	fmt.Printf("  eddy's phases from the run's start: serving (a restored key answered, complete) %.2f s, CPU %.2f s (%.2f µs a key); "+
		"the first checkpoint holding every key %.2f s, CPU %.2f s (%.2f µs a key)\n",
		ph.serving.Seconds(), ph.servingCPU.Seconds(), perKey(ph.servingCPU), ph.stored.Seconds(), ph.storedCPU.Seconds(), perKey(ph.storedCPU))
}

// heldSource is one partition, "mem", with one line, which then stays
// caught up (as a Kafka partition does) until release is closed, and
// ends: the bench ends the run once it has measured it.
type heldSource struct {
	line    string
	release chan struct{}
}

func (s *heldSource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&heldPart{s: s})
	return nil
}
func (s *heldSource) Close() error { return nil }

type heldPart struct {
	s    *heldSource
	next int
}

func (p *heldPart) ID() string { return "mem" }
func (p *heldPart) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		n, err := strconv.Atoi(string(pos))
		if err != nil {
			return err
		}
		p.next = n
	}
	return nil
}
func (p *heldPart) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next == 0 {
		p.next = 1
		return connectors.Batch{Where: "input", Unit: "line", Records: []connectors.Record{{Value: []byte(p.s.line), Seq: 1}}, End: connectors.Position("1")}, nil
	}
	select {
	case <-ctx.Done():
		return connectors.Batch{}, ctx.Err()
	case <-p.s.release:
		return connectors.Batch{}, connectors.ErrEndOfInput
	case <-time.After(20 * time.Millisecond):
	}
	return connectors.Batch{CaughtUp: true, End: connectors.Position(strconv.Itoa(p.next))}, nil
}
func (p *heldPart) Describe(pos connectors.Position) string { return "line " + string(pos) }
func (p *heldPart) Close() error                            { return nil }
