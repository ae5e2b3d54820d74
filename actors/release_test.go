package actors

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// A batch's memory goes back to its source (Batch.Release) once, and only
// once its worker and every shard it was sent to are done with it: the
// shard's dead letters, written from the raw records, still read the
// input, though the source overwrites a batch's bytes as it is released.
func TestBatchReleasedAfterShards(t *testing.T) {
	script := `return {
  parse = eddy.json { k = "string", bad = "boolean" },
  key = "k",
  on_record = function(r, ctx) if r.bad then error("refused in the shard") end end,
  aggregate = { n = eddy.count() },
  emit = "final",
}`
	var lines []string
	for i := range 2000 {
		lines = append(lines, fmt.Sprintf(`{"k":"a","bad":%v,"i":%d}`, i%97 == 0, i))
	}
	src := &releasingSource{lines: lines, batch: 50}
	// The shard takes its first batch only once the reader is 4 batches in:
	// with one worker, the supervisor has delivered that batch by then.
	var first sync.Once
	setTestHookAdd(t, func(string, int) {
		first.Do(func() {
			for deadline := time.Now().Add(time.Minute); src.reads.Load() < 4; {
				if time.Now().After(deadline) {
					t.Error("the reader never got 4 batches in")
					return
				}
				time.Sleep(time.Millisecond) // polling a condition
			}
		})
	})
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dead := &memio.Sink{}
	if _, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: src, Store: store,
		Results: &memio.Sink{}, DeadLetters: dead, Shards: 1, Workers: 1, MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, l := range lines {
		if i%97 == 0 {
			want = append(want, l)
		}
	}
	var got []string
	for _, r := range dead.Rows() {
		v, _ := r.Get("record")
		got = append(got, fmt.Sprint(v))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dead letters' records:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r, rel := src.reads.Load(), src.released.Load(); r != int64(len(lines)/50) || rel != r {
		t.Errorf("%d batches read, %d released: want all %d released once", r, rel, len(lines)/50)
	}
}

// releasingSource reads lines in batches whose Release overwrites their
// bytes, as a source that reads into released memory would.
type releasingSource struct {
	lines           []string
	batch           int
	next            int
	reads, released atomic.Int64
}

func (s *releasingSource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(s)
	return nil
}
func (s *releasingSource) Close() error { return nil }
func (s *releasingSource) ID() string   { return "releasing" }
func (s *releasingSource) Seek(pos connectors.Position) error {
	s.next = 0
	if pos != nil {
		n, err := strconv.Atoi(string(pos))
		s.next = n
		return err
	}
	return nil
}
func (s *releasingSource) Describe(pos connectors.Position) string { return "line " + string(pos) }

func (s *releasingSource) Read(context.Context) (connectors.Batch, error) {
	if s.next >= len(s.lines) {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	end := min(s.next+s.batch, len(s.lines))
	b := connectors.Batch{Where: "input", Unit: "line", End: connectors.Position(strconv.Itoa(end))}
	for i := s.next; i < end; i++ {
		b.Records = append(b.Records, connectors.Record{Value: []byte(s.lines[i]), Seq: int64(i + 1)})
	}
	s.next = end
	var once atomic.Bool
	b.Release = func() {
		if !once.CompareAndSwap(false, true) {
			panic("a batch released twice")
		}
		for _, r := range b.Records {
			for j := range r.Value {
				r.Value[j] = '#'
			}
		}
		s.released.Add(1)
	}
	s.reads.Add(1)
	return b, nil
}
