package actors

import (
	"context"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
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
