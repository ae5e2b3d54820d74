package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/scripting"
)

// documented is one row of the table in docs/observability.md.
type documented struct {
	typ    string
	labels []string
}

var (
	docRow   = regexp.MustCompile("(?m)^\\| `(eddy_\\w+)` \\| (\\w+) \\|([^|]*)\\|")
	docLabel = regexp.MustCompile("`(\\w+)`")
)

// docSeries reads the series docs/observability.md lists under ## Metrics.
func docSeries(t *testing.T) map[string]documented {
	t.Helper()
	md, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	start := strings.Index(text, "\n## Metrics\n")
	if start < 0 {
		t.Fatal(`docs/observability.md has no "## Metrics" section`)
	}
	text = text[start+1:]
	if end := strings.Index(text, "\n## "); end >= 0 {
		text = text[:end]
	}
	out := map[string]documented{}
	for _, m := range docRow.FindAllStringSubmatch(text, -1) {
		d := documented{typ: m[2]}
		for _, l := range docLabel.FindAllStringSubmatch(m[3], -1) {
			d.labels = append(d.labels, l[1])
		}
		out[m[1]] = d
	}
	if len(out) == 0 {
		t.Fatal("found no series in the table of docs/observability.md")
	}
	return out
}

// busyRun is a run of an event-time pipeline with every counter moved, so
// every series shows.
func busyRun(t *testing.T) Run {
	t.Helper()
	p, err := scripting.LoadSource("busy.lua", []byte(`return {
  name = "busy",
  parse = function(line) return { dev = line, t = 1 } end,
  filter = function(r) return true end,
  key = function(r) return r.dev end,
  event_time = "t",
  window = eddy.tumbling(60),
  aggregate = { n = eddy.count() },
}`))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for range 2000 {
		if _, _, _, err := rt.Process([]byte("Comp1")); err != nil {
			t.Fatal(err)
		}
	}
	st := &actors.Stats{}
	st.Read.Store(1000)
	st.Kept.Store(900)
	st.Failed.Store(100)
	st.Checkpoints.Store(3)
	st.Watermark.Store(time.Now().Add(-time.Minute).UnixMilli())
	st.BatchLatency.Observe(3 * time.Millisecond)
	st.StandbyOffsets.Store(&map[string]int64{"p7": 77})
	for _, name := range []string{"records", "dead_letter"} {
		ss := st.Sink(name)
		ss.Rows.Add(7)
		ss.Flush.Observe(time.Millisecond)
		ss.EndToEnd.Observe(20 * time.Millisecond)
	}
	lag, off := int64(42), int64(1000)
	status := actors.Status{
		Partitions: []actors.PartitionStatus{{ID: "p0", Lag: &lag, Offset: &off}, {ID: "p1", Restoring: true, Restored: 5, ToRestore: 10}},
		Checkpoint: &actors.CheckpointStatus{ID: 3, Time: time.Now(), Keys: 12},
		StateBytes: 4096,
		Script:     &actors.ScriptStatus{Reloads: 2, Refused: 1},
	}
	return Run{Pipeline: p, Node: "n1", Stats: st,
		Status: func(context.Context) (actors.Status, error) { return status, nil }}
}

// scrape GETs /metrics of run and parses the answer.
func scrape(t *testing.T, run Run) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(run).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// TestMetricsAsDocumented: every series the docs list is exposed, with its
// type and labels (pipeline and node, then the documented ones), and the
// registry exposes no eddy_ series the docs don't list.
func TestMetricsAsDocumented(t *testing.T) {
	docs := docSeries(t)
	fams := scrape(t, busyRun(t))
	for name, d := range docs {
		f := fams[name]
		if f == nil {
			t.Errorf("%s: documented, not exposed", name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != d.typ {
			t.Errorf("%s: type %s, documented %s", name, got, d.typ)
		}
		want := append([]string{"node", "pipeline"}, d.labels...)
		sort.Strings(want)
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName())
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: labels %v, documented %v", name, got, want)
			}
		}
	}
	for name := range fams {
		if _, ok := docs[name]; strings.HasPrefix(name, "eddy_") && !ok {
			t.Errorf("%s: exposed, not in docs/observability.md", name)
		}
	}
	if len(docs) != len(Series) {
		t.Errorf("the docs list %d series, the collector knows %d", len(docs), len(Series))
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[want] == nil {
			t.Errorf("%s: missing (the Go and process collectors)", want)
		}
	}
}

// TestMetricsValues: the series carry the run's numbers, labelled as they
// should be.
func TestMetricsValues(t *testing.T) {
	fams := scrape(t, busyRun(t))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"eddy_records_read_total", nil, 1000},
		{"eddy_records_failed_total", nil, 100},
		{"eddy_sink_rows_total", map[string]string{"sink": "dead_letter"}, 7},
		{"eddy_partition_lag_records", map[string]string{"partition": "p0"}, 42},
		{"eddy_partition_offset", map[string]string{"partition": "p0"}, 1000},
		{"eddy_partition_restoring", map[string]string{"partition": "p1"}, 1},
		{"eddy_partition_restore_total_changes", map[string]string{"partition": "p1"}, 10},
		{"eddy_state_keys", nil, 12},
		{"eddy_standby_offset", map[string]string{"partition": "p7"}, 77},
		{"eddy_script_reloads_total", nil, 2},
		{"eddy_script_reloads_refused_total", nil, 1},
		{"eddy_status_up", nil, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := find(t, fams, c.name, c.labels)
			if got := value(m); got != c.want {
				t.Errorf("%v, want %v", got, c.want)
			}
			if l := label(m, "pipeline"); l != "busy" {
				t.Errorf("pipeline label %q", l)
			}
		})
	}
	if lag := value(find(t, fams, "eddy_watermark_lag_seconds", nil)); lag < 59 || lag > 3600 {
		t.Errorf("watermark lag %vs, want about 60", lag)
	}
	if lua := value(find(t, fams, "eddy_lua_seconds_total", map[string]string{"hook": "parse"})); lua <= 0 {
		t.Errorf("Lua time of parse: %v, want > 0", lua)
	}
	h := find(t, fams, "eddy_batch_latency_seconds", nil).GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 0.003 || h.GetSampleSum() > 0.0031 {
		t.Errorf("batch latency: count %d, sum %v; want 1 and 3ms", h.GetSampleCount(), h.GetSampleSum())
	}
}

// TestMetricsStarting: before the engine answers its status, the scrape
// says so in eddy_status_up and leaves out what only the status knows.
func TestMetricsStarting(t *testing.T) {
	run := busyRun(t)
	run.Status = func(context.Context) (actors.Status, error) { return actors.Status{}, errors.New("starting") }
	fams := scrape(t, run)
	if up := value(find(t, fams, "eddy_status_up", nil)); up != 0 {
		t.Errorf("eddy_status_up %v, want 0", up)
	}
	for _, name := range []string{"eddy_partition_offset", "eddy_state_bytes"} {
		if fams[name] != nil {
			t.Errorf("%s exposed without a status", name)
		}
	}
	if fams["eddy_records_read_total"] == nil {
		t.Error("the counters must show while the engine starts")
	}
}

func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("%s: not exposed", name)
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			if label(m, k) != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s: no series with labels %v", name, labels)
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
