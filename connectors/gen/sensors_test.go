package gen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

func TestSensorsConformance(t *testing.T) {
	for _, uri := range []string{
		"gen:sensors?count=5000&seed=7&bad=0.05",
		"gen:sensors?sensors=10&delay=2s&gap=0.01&spike=0.05&count=3000&bad=0.1",
		"gen:sensors?sensors=1&delay=0&count=1",
	} {
		t.Run(uri, func(t *testing.T) { connectortest.TestSource(t, open(uri), connectortest.SourceOptions{}) })
	}
	t.Run("unbounded", func(t *testing.T) {
		connectortest.TestSource(t, open("gen:sensors?seed=3&sensors=7"), connectortest.SourceOptions{MaxRecords: 4000})
	})
}

// sensorLines writes count lines of the generator called name with seed 1.
func sensorLines(t *testing.T, name string, count int64, bad float64) []string {
	t.Helper()
	var b bytes.Buffer
	if err := gen.Write(&b, name, 1, 0, count, bad); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// sensorReading is a line parsed as a pipeline would, strictly.
type sensorReading struct {
	Sensor string
	TS     time.Time
	Temp   float64
	Site   string
}

var sensorName = regexp.MustCompile(`^s-(\d{4,}|heartbeat)$`)

// parseReading parses a good line: exactly the four fields, of their types.
func parseReading(line string) (sensorReading, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return sensorReading{}, err
	}
	var r sensorReading
	var ok [4]bool
	r.Sensor, ok[0] = m["sensor"].(string)
	ts, tsOK := m["ts"].(string)
	r.Temp, ok[2] = m["temp"].(float64)
	r.Site, ok[3] = m["site"].(string)
	if !tsOK {
		return r, fmt.Errorf("ts is %v", m["ts"])
	}
	var err error
	if r.TS, err = time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil {
		return r, err
	}
	ok[1] = true
	if len(m) != 4 || slices.Contains(ok[:], false) || !sensorName.MatchString(r.Sensor) {
		return r, fmt.Errorf("not a reading")
	}
	return r, nil
}

func parseAll(t *testing.T, lines []string) []sensorReading {
	t.Helper()
	out := make([]sensorReading, len(lines))
	for i, l := range lines {
		r, err := parseReading(l)
		if err != nil {
			t.Fatalf("line %d with bad=0: %v: %s", i, err, l)
		}
		out[i] = r
	}
	return out
}

var sensorsStart = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// TestSensorsShape: with the defaults, 100 sensors read once a second from
// 2024-03-01T00:00:00Z at plants 1-5, 15-25 °C; every second of event time
// has exactly 100 lines, each fleet sensor at most one, and the rest are
// s-heartbeat standing in for silent sensors.
func TestSensorsShape(t *testing.T) {
	const seconds = 600
	lines := sensorLines(t, "sensors", 100*seconds, 0)
	if !strings.HasPrefix(lines[0], `{"sensor":"s-`) {
		t.Fatalf("line 0: %s", lines[0])
	}
	perSecond := map[int64]int{}
	seen := map[string]bool{}
	sites := map[string]string{}
	heartbeats, outside := 0, 0
	for i, r := range parseAll(t, lines) {
		sec := int64(r.TS.Sub(sensorsStart) / time.Second)
		if sec < 0 || sec >= seconds || r.TS.Sub(sensorsStart)%time.Second != 0 {
			t.Fatalf("line %d: ts %s is not a whole second of the first %d", i, r.TS, seconds)
		}
		perSecond[sec]++
		if r.Sensor == "s-heartbeat" {
			heartbeats++
			if r.Site != "gateway" {
				t.Fatalf("line %d: heartbeat at %s", i, r.Site)
			}
			continue
		}
		key := r.Sensor + r.TS.String()
		if seen[key] {
			t.Fatalf("line %d: %s reads twice at %s", i, r.Sensor, r.TS)
		}
		seen[key] = true
		if s, ok := sites[r.Sensor]; ok && s != r.Site || !regexp.MustCompile(`^plant-[1-5]$`).MatchString(r.Site) {
			t.Fatalf("line %d: %s at %s (before %s)", i, r.Sensor, r.Site, s)
		}
		sites[r.Sensor] = r.Site
		if r.Temp < 15 || r.Temp > 25 {
			outside++
		}
	}
	for sec := range int64(seconds) {
		if perSecond[sec] != 100 {
			t.Fatalf("second %d has %d lines, want 100", sec, perSecond[sec])
		}
	}
	if len(sites) != 100 || sites["s-0000"] == "" || sites["s-0099"] == "" {
		t.Errorf("%d sensors read, want s-0000 … s-0099", len(sites))
	}
	// Outside 15-25 °C only by a spike: 0.2% of readings.
	if f := float64(outside) / float64(len(lines)); f > 0.006 {
		t.Errorf("%.4f of readings outside 15-25 °C", f)
	}
	if heartbeats == 0 || heartbeats > len(lines)/2 {
		t.Errorf("%d of %d lines are heartbeats", heartbeats, len(lines))
	}
	t.Logf("%.3f of lines are heartbeats (silent sensors' slots)", float64(heartbeats)/float64(len(lines)))
}

// TestSensorsDeterministic: the same seed and parameters give the same
// lines, through Write at any offset and the source; the canonical name
// ignores the order and default values of parameters.
func TestSensorsDeterministic(t *testing.T) {
	const name = "sensors?sensors=13&delay=3s&gap=0.01&spike=0.01"
	a := sensorLines(t, name, 10000, 0.05)
	b := sensorLines(t, name, 10000, 0.05)
	if !slices.Equal(a, b) {
		t.Fatal("two Writes differ")
	}
	var other bytes.Buffer
	if err := gen.Write(&other, "sensors?spike=0.01&gap=0.01&sensors=13&delay=3s&interval=1s", 2, 0, 10000, 0.05); err != nil {
		t.Fatal(err)
	}
	if other.String() == strings.Join(a, "\n")+"\n" {
		t.Fatal("seed 2 gives seed 1's lines")
	}
	var mid bytes.Buffer
	if err := gen.Write(&mid, name, 1, 4321, 3000, 0.05); err != nil {
		t.Fatal(err)
	}
	if mid.String() != strings.Join(a[4321:7321], "\n")+"\n" {
		t.Fatal("Write from 4321 differs from those lines of a full Write")
	}

	uri := "gen:sensors?delay=3s&spike=0.01&sensors=13&gap=0.01&start=2024-03-01T00:00:00Z&count=10000&seed=1&bad=0.05"
	l := connectortest.Start(t, open(uri)(t))
	p := l.Partitions()[0]
	if p.ID() != "gen:sensors" {
		t.Errorf("partition ID %q, want gen:sensors", p.ID())
	}
	res := connectortest.ReadAll(t, p, 0, 0)
	recs := res.Records()
	if len(recs) != len(a) {
		t.Fatalf("source yielded %d records, want %d", len(recs), len(a))
	}
	for i, r := range recs {
		if string(r.Value) != a[i] {
			t.Fatalf("record %d: source %s, Write %s", i, r.Value, a[i])
		}
	}
	// A restart in the middle of a block gives the rest exactly.
	pos := res.Batches[3].End
	l2 := connectortest.Start(t, open(uri)(t))
	p2 := l2.Partitions()[0]
	if err := p2.Seek(pos); err != nil {
		t.Fatal(err)
	}
	rest := connectortest.ReadAll(t, p2, 0, 0).Records()
	if n := len(rest); n == 0 || string(rest[0].Value) != a[len(a)-n] || string(rest[n-1].Value) != a[len(a)-1] {
		t.Fatalf("restart yielded %d records that differ from the tail", n)
	}

	cfg := gen.DefaultSensorsConfig()
	if cfg.Name() != "sensors" {
		t.Errorf("defaults' name %q", cfg.Name())
	}
	cfg.Sensors, cfg.Delay, cfg.Gap, cfg.Spike = 13, 3*time.Second, 0.01, 0.01
	if cfg.Name() != name {
		t.Errorf("Name() = %q, want %q", cfg.Name(), name)
	}
}

// TestSensorsSeekMismatch: a checkpoint of other parameters is refused.
func TestSensorsSeekMismatch(t *testing.T) {
	l := connectortest.Start(t, open("gen:sensors?sensors=10&count=100")(t))
	b, err := l.Partitions()[0].Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"gen:sensors?sensors=20&count=100", "gen:sensors?count=100", "gen:sensors?sensors=10&delay=1s&count=100"} {
		l2 := connectortest.Start(t, open(uri)(t))
		err := l2.Partitions()[0].Seek(b.End)
		if err == nil || !strings.Contains(err.Error(), "checkpoint was taken with gen:sensors?sensors=10 seed=1") {
			t.Errorf("%s: Seek got %v, want a mismatch error", uri, err)
		}
	}
	l3 := connectortest.Start(t, open("gen:sensors?count=100&sensors=10&delay=5s&rate=0")(t))
	if err := l3.Partitions()[0].Seek(b.End); err != nil {
		t.Errorf("same parameters written otherwise: %v", err)
	}
}

// TestSensorsDisorder: no reading comes after one more than delay later,
// the bound is reached, and the stream holds the same readings whatever
// the delay: disorder reorders, it does not change readings.
func TestSensorsDisorder(t *testing.T) {
	var inOrder []string
	for _, tt := range []struct {
		name           string
		delay          time.Duration
		interval       time.Duration
		wantAtLeast    time.Duration
		wantSortedSame bool
	}{
		{"in order", 0, time.Second, 0, true},
		{"default", 5 * time.Second, time.Second, 4 * time.Second, true},
		{"1s", time.Second, time.Second, time.Second, true},
		{"2.5s", 2500 * time.Millisecond, time.Second, 2 * time.Second, true},
		{"200ms readings", 5 * time.Second, 200 * time.Millisecond, 4 * time.Second, false},
		{"delay below interval", 500 * time.Millisecond, time.Second, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("sensors?sensors=37&gap=0.005&spike=0.01&delay=%s&interval=%s", tt.delay, tt.interval)
			lines := sensorLines(t, name, 37*1200, 0)
			var maxSeen time.Time
			var worst time.Duration
			for i, r := range parseAll(t, lines) {
				if r.TS.After(maxSeen) {
					maxSeen = r.TS
				}
				if late := maxSeen.Sub(r.TS); late > worst {
					worst = late
					if late > tt.delay {
						t.Fatalf("line %d: %s is %s behind %s, more than delay %s", i, r.TS, late, maxSeen, tt.delay)
					}
				}
			}
			if worst < tt.wantAtLeast {
				t.Errorf("the most a reading is late is %s, want at least %s", worst, tt.wantAtLeast)
			}
			if tt.delay == 0 {
				inOrder = slices.Sorted(slices.Values(lines))
				return
			}
			if tt.wantSortedSame && !slices.Equal(slices.Sorted(slices.Values(lines)), inOrder) {
				t.Error("the readings differ from those of delay=0")
			}
		})
	}
}

// TestSensorsSilence: with gap > 0 sensors fall silent, each time for at
// least 6 minutes of event time, and their slots go to s-heartbeat; with
// gap=0 every sensor reads every second.
func TestSensorsSilence(t *testing.T) {
	// gap is per reading, so fewer readings need a higher gap for as many
	// silences.
	for _, tt := range []struct {
		name     string
		interval time.Duration
		gap      float64
	}{{"1s", time.Second, 0.0005}, {"7s", 7 * time.Second, 0.003}, {"1m", time.Minute, 0.03}} {
		t.Run(tt.name, func(t *testing.T) {
			const sensors, span = 20, 4 * time.Hour
			slots := int64(span / tt.interval)
			lines := sensorLines(t, fmt.Sprintf("sensors?sensors=%d&interval=%s&gap=%g", sensors, tt.interval, tt.gap), sensors*slots, 0)
			times := map[string][]time.Time{}
			heartbeats := 0
			for _, r := range parseAll(t, lines) {
				if r.Sensor == "s-heartbeat" {
					heartbeats++
					continue
				}
				times[r.Sensor] = append(times[r.Sensor], r.TS)
			}
			silences, missing := 0, 0
			for s, ts := range times {
				slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
				first, last := ts[0].Sub(sensorsStart), sensorsStart.Add(time.Duration(slots-1)*tt.interval).Sub(ts[len(ts)-1])
				missing += int(first/tt.interval + last/tt.interval)
				for k := 1; k < len(ts); k++ {
					gap := ts[k].Sub(ts[k-1])
					if gap == tt.interval {
						continue
					}
					silences++
					missing += int(gap/tt.interval) - 1
					if gap-tt.interval < 6*time.Minute {
						t.Fatalf("%s is silent only %s, from %s to %s", s, gap-tt.interval, ts[k-1], ts[k])
					}
				}
			}
			if len(times) != sensors || silences < 5 {
				t.Fatalf("%d sensors read, %d silences in %s", len(times), silences, span)
			}
			if missing != heartbeats {
				t.Errorf("%d readings are missing but %d heartbeats stand in", missing, heartbeats)
			}
		})
	}
	lines := sensorLines(t, "sensors?sensors=20&gap=0", 20*1800, 0)
	for i, l := range lines {
		if strings.Contains(l, "heartbeat") {
			t.Fatalf("line %d with gap=0: %s", i, l)
		}
	}
}

// TestSensorsSpikes: with spike > 0 some readings jump 15-30 °C off their
// neighbours in time; with spike=0 none, and neighbours differ by little.
func TestSensorsSpikes(t *testing.T) {
	for _, spike := range []float64{0, 0.01} {
		t.Run(fmt.Sprint(spike), func(t *testing.T) {
			const sensors, seconds = 10, 3600
			lines := sensorLines(t, fmt.Sprintf("sensors?sensors=%d&gap=0&spike=%g", sensors, spike), sensors*seconds, 0)
			temps := map[string]map[int64]float64{}
			for _, r := range parseAll(t, lines) {
				if temps[r.Sensor] == nil {
					temps[r.Sensor] = map[int64]float64{}
				}
				temps[r.Sensor][int64(r.TS.Sub(sensorsStart)/time.Second)] = r.Temp
			}
			// A reading's baseline is the median of its neighbours within
			// 5 s, which a spike or two among them does not move.
			spikes := 0
			for s, byTime := range temps {
				for sec := int64(5); sec < seconds-5; sec++ {
					var near []float64
					for d := int64(-5); d <= 5; d++ {
						if d != 0 {
							near = append(near, byTime[sec+d])
						}
					}
					slices.Sort(near)
					base := (near[4] + near[5]) / 2
					cur := byTime[sec]
					switch off := cur - base; {
					case off > 13 || off < -13:
						spikes++
						if off > 31.5 || off < -31.5 {
							t.Errorf("%s at %d: %.2f off %.2f", s, sec, cur, base)
						}
					case off > 2 || off < -2:
						t.Errorf("%s at %d: %.2f off %.2f is neither noise nor a spike", s, sec, cur, base)
					}
				}
			}
			want := spike * sensors * seconds
			if spike == 0 && spikes != 0 || spike > 0 && (float64(spikes) < want/2 || float64(spikes) > want*2) {
				t.Errorf("%d spikes with spike=%g, want about %.0f", spikes, spike, want)
			}
		})
	}
}

// TestSensorsBad: with bad > 0, about that fraction of lines are readings
// without ts, with ts "yesterday", with temp a string or null, cut short,
// or from 2099; the rest parse.
func TestSensorsBad(t *testing.T) {
	const n, bad = 40000, 0.1
	kinds := map[string]int{}
	for _, l := range sensorLines(t, "sensors", n, bad) {
		if l == "" {
			t.Fatal("an empty line would vanish from a dir: source's records")
		}
		if r, err := parseReading(l); err == nil {
			if r.TS.Year() == 2099 {
				kinds["future"]++
			} else {
				kinds["good"]++
			}
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			kinds["truncated"]++
			continue
		}
		ts, hasTS := m["ts"]
		temp := m["temp"]
		switch _, isString := temp.(string); {
		case !hasTS:
			kinds["no ts"]++
		case ts == "yesterday":
			kinds["ts yesterday"]++
		case isString:
			kinds["temp string"]++
		case temp == nil:
			kinds["temp null"]++
		default:
			t.Fatalf("unexpected bad line %s", l)
		}
	}
	for _, k := range []string{"no ts", "ts yesterday", "temp string", "temp null", "truncated", "future"} {
		if kinds[k] == 0 {
			t.Errorf("no %s lines: %v", k, kinds)
		}
	}
	if f := float64(n-kinds["good"]) / n; f < 0.08 || f > 0.12 {
		t.Errorf("bad lines are %.3f with bad=%g: %v", f, bad, kinds)
	}
	if kinds["future"] > kinds["no ts"] {
		t.Errorf("2099 lines should be rare: %v", kinds)
	}
}

func TestSensorsParamErrors(t *testing.T) {
	tests := []struct {
		name        string
		params      string
		errContains string
	}{
		{"no sensors", "sensors=0", "sensors=0 is below 1"},
		{"sensors not a number", "sensors=many", `sensors="many"`},
		{"zero interval", "interval=0s", "interval=0s must be positive"},
		{"sub-millisecond interval", "interval=1500us", "interval=1.5ms is not a positive whole number of milliseconds"},
		{"negative delay", "delay=-1s", "delay=-1s is negative"},
		{"delay not a duration", "delay=soon", `delay="soon"`},
		{"gap above 1", "gap=2", "gap=2 is outside [0, 1]"},
		{"spike not a number", "spike=often", `spike="often"`},
		{"start not a time", "start=monday", `start="monday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.OpenSource("gen:sensors?"+tt.params, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("source: got error %v, want one containing %q", err, tt.errContains)
			}
			err = gen.Write(&bytes.Buffer{}, "sensors?"+tt.params, 1, 0, 1, 0)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("Write: got error %v, want one containing %q", err, tt.errContains)
			}
		})
	}
	if err := gen.Write(&bytes.Buffer{}, "netflow?sensors=3", 1, 0, 1, 0); err == nil || !strings.Contains(err.Error(), "takes no parameters") {
		t.Errorf("netflow with parameters: %v", err)
	}
	// Other generators ignore URI parameters they do not know, as before.
	if _, err := connectors.OpenSource("gen:netflow?sensors=3&count=1", nil); err != nil {
		t.Errorf("gen:netflow with an unknown parameter: %v", err)
	}
}

func TestSensorsStart(t *testing.T) {
	lines := sensorLines(t, "sensors?sensors=2&delay=0&interval=250ms&start=2025-12-31T23:59:59.5%2B01:00", 6, 0)
	want := []string{"22:59:59.500", "22:59:59.500", "22:59:59.750", "22:59:59.750", "23:00:00.000", "23:00:00.000"}
	for i, l := range lines {
		if !strings.Contains(l, `"ts":"2025-12-31T`+want[i]+`Z"`) {
			t.Errorf("line %d: %s, want ts …T%sZ", i, l, want[i])
		}
	}
}

func BenchmarkSensorsSource(b *testing.B) {
	s, _ := gen.New("sensors?sensors=10000", gen.Config{Seed: 1})
	l := connectortest.NewListener()
	_ = s.Start(context.Background(), l)
	p := l.Partitions()[0]
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		bt, _ := p.Read(context.Background())
		n += len(bt.Records)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
