package actors_test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/files"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
)

const windowsScript = `return {
  parse = eddy.json { sensor = "string", ts = "string", temp = "number" },
  event_time = "ts",
  watermark = { out_of_order = "10s" },
  key = "sensor",
  window = eddy.tumbling("1m"),
  aggregate = { readings = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
  emit = "final",
}`

// BenchmarkWindows: 10,000 sensors reading every second, 1-minute tumbling
// windows per sensor in event time (readings 5s out of order), against a
// plain-Go baseline doing the same windows with the same parser and the
// same watermark rule. Run it with `just bench-windows`.
func BenchmarkWindows(b *testing.B) {
	minutes := int64(5)
	if testing.Short() {
		minutes = 2
	}
	const sensors = 10_000
	records := sensors * 60 * minutes
	dir := filepath.Join(b.TempDir(), "readings")
	if err := gen.WriteDir(dir, fmt.Sprintf("sensors?sensors=%d&gap=0&spike=0.001&delay=5s", sensors), 7, records, 8, 0); err != nil {
		b.Fatal(err)
	}
	warm(dir)

	var want, got []windowRow
	var baseLat *actors.Latency
	var stats *actors.Stats
	base := benchrun.Measure("baseline (plain Go: bufio + fastjson + maps)", records, func() { want, baseLat = windowsBaseline(b, dir) })
	eddy := benchrun.Measure("eddy (Lua + actors + Badger checkpoints)", records, func() {
		var rows []connectors.Row
		rows, stats = windowsEddy(b, dir)
		got = eddyWindows(b, rows)
	})
	if err := diffWindows(want, got); err != nil {
		b.Fatalf("eddy and the baseline disagree: %v", err)
	}
	b.ReportMetric(eddy.Rate(), "eddy-rec/s")
	b.ReportMetric(base.Rate(), "baseline-rec/s")
	benchrun.Print(fmt.Sprintf("1-minute tumbling windows, %d sensors, %d minutes of 1s readings (%d records, 5s out of order), %d windows equal row by row",
		sensors, minutes, records, len(got)), base, eddy)
	fmt.Printf("  batch latency p50/p99: baseline %v / %v, eddy %v / %v\n", baseLat.Quantile(0.5), baseLat.Quantile(0.99),
		stats.BatchLatency.Quantile(0.5), stats.BatchLatency.Quantile(0.99))
	fmt.Printf("  window fire latency (read of the record that passed the window's end → row to the sink): p50 %v, p99 %v\n",
		stats.FireLatency.Quantile(0.5), stats.FireLatency.Quantile(0.99))
	fmt.Printf("  checkpoints: %d, time p50 %v, p99 %v\n", stats.CheckpointLatency.Count(),
		stats.CheckpointLatency.Quantile(0.5), stats.CheckpointLatency.Quantile(0.99))
}

func windowsEddy(b *testing.B, dir string) ([]connectors.Row, *actors.Stats) {
	p, err := scripting.LoadSource("windows.lua", []byte(windowsScript))
	if err != nil {
		b.Fatal(err)
	}
	src, err := files.NewDir(dir, files.DirConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	rows, stats, _ := runBench(b, actors.Config{Pipeline: p, Source: src, Late: &memio.Sink{},
		TriggerInterval: 200 * time.Millisecond, CheckpointInterval: time.Second})
	return rows, stats
}

// windowRow is one sensor's window as the script emits it.
type windowRow struct {
	sensor, start, end string
	n                  int64
	avg, min, max      float64
}

func (w windowRow) String() string {
	return fmt.Sprintf("%s %s–%s readings=%d avg=%v min=%v max=%v", w.sensor, w.start, w.end, w.n, w.avg, w.min, w.max)
}

// eddyWindows reads the script's result rows as windowRows.
func eddyWindows(b *testing.B, rows []connectors.Row) []windowRow {
	out := make([]windowRow, 0, len(rows))
	for _, r := range rows {
		var w windowRow
		for _, f := range r.Fields {
			var ok bool
			switch f.Name {
			case "sensor":
				w.sensor, ok = f.Value.(string)
			case "window_start":
				w.start, ok = f.Value.(string)
			case "window_end":
				w.end, ok = f.Value.(string)
			case "readings":
				var n float64
				n, ok = number(f.Value)
				w.n = int64(n)
			case "avg":
				w.avg, ok = number(f.Value)
			case "min":
				w.min, ok = number(f.Value)
			case "max":
				w.max, ok = number(f.Value)
			}
			if !ok {
				b.Fatalf("eddy's row %v: field %s is %T %v", r, f.Name, f.Value, f.Value)
			}
		}
		out = append(out, w)
	}
	return out
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// diffWindows compares the windows of both sides by sensor and window,
// averages to 1e-9 of their value (their sums may add in other orders).
func diffWindows(want, got []windowRow) error {
	key := func(w windowRow) string { return w.sensor + " " + w.start }
	byKey := map[string]windowRow{}
	for _, w := range want {
		byKey[key(w)] = w
	}
	var diffs []string
	for _, g := range got {
		w, ok := byKey[key(g)]
		delete(byKey, key(g))
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("eddy's %v is not the baseline's", g))
		case g.end != w.end || g.n != w.n || g.min != w.min || g.max != w.max || math.Abs(g.avg-w.avg) > 1e-9*math.Abs(w.avg):
			diffs = append(diffs, fmt.Sprintf("eddy's %v, the baseline's %v", g, w))
		}
	}
	for _, w := range byKey {
		diffs = append(diffs, fmt.Sprintf("the baseline's %v is not eddy's", w))
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%d of %d windows differ (eddy emitted %d, the baseline %d):\n%s", len(diffs), max(len(want), len(got)),
		len(got), len(want), strings.Join(diffs[:min(len(diffs), 5)], "\n"))
}

// windowsBaseline is the same computation in plain Go: per record, the
// watermark (latest time less 10s) fires the minutes it passed.
func windowsBaseline(b *testing.B, dir string) ([]windowRow, *actors.Latency) {
	type acc struct {
		n             int64
		sum, min, max float64
	}
	type row struct {
		sensor     string
		start, end int64
		acc
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	sort.Strings(paths)
	open := map[int64]map[string]*acc{} // window start → sensor → acc
	var out []row
	var p fastjson.Parser
	lat := &actors.Latency{}
	maxTime, timed := int64(0), false
	fire := func(wm int64) {
		for start, bySensor := range open {
			if start+60_000 <= wm {
				for s, a := range bySensor {
					out = append(out, row{s, start, start + 60_000, *a})
				}
				delete(open, start)
			}
		}
	}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		n, t0 := 0, time.Now()
		for sc.Scan() {
			v, err := p.ParseBytes(sc.Bytes())
			if err == nil {
				s, ts, temp := v.GetStringBytes("sensor"), v.GetStringBytes("ts"), v.Get("temp")
				if s != nil && ts != nil && temp != nil && temp.Type() == fastjson.TypeNumber {
					if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
						ms := t.UnixMilli()
						if timed && maxTime-10_000 >= (ms/60_000+1)*60_000 {
							// late: not in the bench's input
						} else {
							start := ms / 60_000 * 60_000
							if open[start] == nil {
								open[start] = map[string]*acc{}
							}
							x := temp.GetFloat64()
							a := open[start][string(s)]
							if a == nil {
								a = &acc{min: x, max: x}
								open[start][string(s)] = a
							}
							a.n++
							a.sum += x
							a.min, a.max = min(a.min, x), max(a.max, x)
						}
						if !timed || ms > maxTime {
							if timed && (ms-10_000)/60_000 != (maxTime-10_000)/60_000 {
								fire(ms - 10_000)
							}
							maxTime, timed = ms, true
						}
					}
				}
			}
			if n++; n == 1024 {
				lat.Observe(time.Since(t0))
				n, t0 = 0, time.Now()
			}
		}
		f.Close()
	}
	fire(1 << 62)
	stamp := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	rows := make([]windowRow, len(out))
	for i, r := range out {
		rows[i] = windowRow{sensor: r.sensor, start: stamp(r.start), end: stamp(r.end), n: r.n, avg: r.sum / float64(r.n), min: r.min, max: r.max}
	}
	return rows, lat
}
