package actors

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

type retryingSink struct{ n int64 }

func (s *retryingSink) Write(context.Context, []connectors.Row) error { return nil }
func (s *retryingSink) Flush(context.Context) error                   { return nil }
func (s *retryingSink) Close() error                                  { return nil }
func (s *retryingSink) Retries() int64                                { return s.n }

// TestSinkStatsRetries: a sink's counters report the retries of a sink
// that counts them, and 0 for one that doesn't retry.
func TestSinkStatsRetries(t *testing.T) {
	var st Stats
	st.addSink("mysql", &retryingSink{n: 3})
	st.addSink("stdout", connectors.Sink(nil))
	got := map[string]int64{}
	st.Sinks(func(name string, ss *SinkStats) { got[name] = ss.Retries() })
	if got["mysql"] != 3 || got["stdout"] != 0 || len(got) != 2 {
		t.Errorf("retries by sink %v, want mysql 3 and stdout 0", got)
	}
}

// TestSinkCounters: a run counts each sink's rows, the time of its
// flushes, and the end-to-end latency of what it wrote: records and dead
// letters each write, results each trigger.
func TestSinkCounters(t *testing.T) {
	lines := []string{`{"dstdevice":"C1","dstport":"80"}`, `not json`, `{"dstdevice":"C2","dstport":"443"}`}
	for _, tc := range []struct {
		name, script string
		sinks        []string
	}{
		{"aggregate, update emit", strings.Replace(countScript, `"final"`, `"update"`, 1), []string{"results", "dead_letter"}},
		{"records", `return { parse = eddy.json { dstdevice = "string" } }`, []string{"records", "dead_letter"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := state.Open("", state.WithInMemory())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			st := &Stats{}
			cfg := Config{Pipeline: load(t, tc.script), Source: &memio.Source{Lines: lines}, Store: store,
				DeadLetters: &memio.Sink{}, MaxErrors: -1, Stats: st}
			if cfg.Pipeline.HasAggregate() {
				cfg.Results = &memio.Sink{}
			} else {
				cfg.Records = &memio.Sink{}
			}
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			for _, name := range tc.sinks {
				ss := st.Sink(name)
				if ss.Rows.Load() == 0 || ss.Flush.Count() == 0 || ss.EndToEnd.Count() == 0 {
					t.Errorf("%s: %d rows, %d flushes, %d end-to-end latencies; want each > 0", name, ss.Rows.Load(), ss.Flush.Count(), ss.EndToEnd.Count())
				}
			}
		})
	}
}
