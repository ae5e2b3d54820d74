package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/testenv"
)

const sensorScript = "../../scripts/sensor_report.lua"

// sensorExpect computes seed 002's report from the generated files with
// plain Go, independently of eddy: windows per sensor and minute, anomaly
// alerts between a sensor's consecutive windows, and missing-data alerts
// by replaying the stream in order with the script's watermark rule
// (latest event time so far less 10s; a sensor's silence timer, 300s after
// its latest reading, fires once the watermark passes it).
func sensorExpect(t *testing.T, dir string) (windows, alerts map[string]bool) {
	t.Helper()
	type win struct {
		n             int
		sum, min, max float64
	}
	wins := map[string]map[int64]*win{}
	timers := map[string]int64{}
	alerts = map[string]bool{}
	var maxTime int64
	const ooo, silence = 10_000, 300_000
	files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var r struct {
				Sensor *string
				Ts     *string
				Temp   *float64
			}
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.Sensor == nil || r.Ts == nil || r.Temp == nil {
				continue
			}
			if *r.Sensor == "s-heartbeat" {
				continue
			}
			ts, err := time.Parse(time.RFC3339Nano, *r.Ts)
			if err != nil || ts.After(time.Now().Add(24*time.Hour)) {
				continue
			}
			ms := ts.UnixMilli()
			if maxTime > 0 {
				wm := maxTime - ooo
				var due []string
				for s, at := range timers {
					if at <= wm {
						due = append(due, s)
					}
				}
				for _, s := range due {
					alerts[fmt.Sprintf(`{"alert":"missing","last_reading":%q,"sensor":%q,"silent_for":300}`,
						time.UnixMilli(timers[s]-silence).UTC().Format(time.RFC3339), s)] = true
					delete(timers, s)
				}
				if (ms/60000+1)*60000 <= wm {
					t.Fatalf("record %s is late: the generator's disorder exceeds the script's bound", sc.Text())
				}
			}
			if timers[*r.Sensor] < ms+silence {
				timers[*r.Sensor] = ms + silence
			}
			maxTime = max(maxTime, ms)
			if wins[*r.Sensor] == nil {
				wins[*r.Sensor] = map[int64]*win{}
			}
			start := ms / 60000 * 60000
			w := wins[*r.Sensor][start]
			if w == nil {
				w = &win{min: *r.Temp, max: *r.Temp}
				wins[*r.Sensor][start] = w
			}
			w.n++
			w.sum += *r.Temp
			w.min, w.max = math.Min(w.min, *r.Temp), math.Max(w.max, *r.Temp)
		}
		fh.Close()
	}
	windows = map[string]bool{}
	format := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	for s, byStart := range wins {
		starts := make([]int64, 0, len(byStart))
		for st := range byStart {
			starts = append(starts, st)
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		var prev *float64
		for _, st := range starts {
			w := byStart[st]
			avg := w.sum / float64(w.n)
			windows[canon(t, fmt.Sprintf(`{"sensor":%q,"window_start":%q,"window_end":%q,"readings":%d,"avg":%s,"min":%s,"max":%s}`,
				s, format(st), format(st+60000), w.n, num(avg), num(w.min), num(w.max)))] = true
			if prev != nil {
				high, low := w.max-*prev, *prev-w.min
				if high > 8 || low > 8 {
					v := w.min
					if high >= low {
						v = w.max
					}
					alerts[canon(t, fmt.Sprintf(`{"alert":"anomaly","sensor":%q,"window_start":%q,"value":%s,"previous_avg":%s}`,
						s, format(st), num(v), num(*prev)))] = true
				}
			}
			prev = &avg
		}
	}
	canonAlerts := map[string]bool{}
	for a := range alerts {
		canonAlerts[canon(t, a)] = true
	}
	return windows, canonAlerts
}

func num(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// canon re-encodes a JSON object with sorted keys.
func canon(t *testing.T, s string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %s", s)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// reportSets splits eddy's report into windows and alerts.
func reportSets(t *testing.T, out string) (windows, alerts map[string]bool) {
	t.Helper()
	windows, alerts = map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		c := canon(t, line)
		if strings.Contains(c, `"alert":`) {
			alerts[c] = true
		} else {
			windows[c] = true
		}
	}
	return windows, alerts
}

func sameSet(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Fatalf("%s: %d missing, %d extra (of %d)\nmissing: %v\nextra: %v", what, len(missing), len(extra), len(want), first3(missing), first3(extra))
	}
}

func genSensors(t *testing.T, delay string, minutes int64) string {
	t.Helper()
	return genSensorFiles(t, delay, minutes, 5)
}

// genSensorFiles writes the readings of 40 sensors, one a second each, for
// minutes of event time into files files.
func genSensorFiles(t *testing.T, delay string, minutes int64, files int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "readings")
	name := "sensors?sensors=40&gap=0.004&delay=" + delay
	if err := gen.WriteDir(dir, name, 11, 40*60*minutes, files, 0.002); err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireBothAlerts fails the test unless the expected alerts hold both
// kinds: missing data and anomalies.
func requireBothAlerts(t *testing.T, alerts map[string]bool) {
	t.Helper()
	var missing int
	for a := range alerts {
		if strings.Contains(a, `"missing"`) {
			missing++
		}
	}
	if missing == 0 || len(alerts) == missing {
		t.Fatalf("the input has %d missing-data and %d anomaly alerts: want both kinds", missing, len(alerts)-missing)
	}
}

// The sensor report over ordered and over shuffled readings, each against
// the independent computation.
func TestSensorReport(t *testing.T) {
	for _, delay := range []string{"0s", "5s"} {
		t.Run("delay="+delay, func(t *testing.T) {
			dir := genSensors(t, delay, 40)
			wantW, wantA := sensorExpect(t, dir)
			requireBothAlerts(t, wantA)
			out, stderr, err := eddy(t, "run", sensorScript, "--source", "dir:"+dir, "--until-idle", "-q",
				"--dead-letter", "file:"+filepath.Join(t.TempDir(), "dead.jsonl"))
			if err != nil {
				t.Fatalf("eddy run: %v\n%s", err, stderr)
			}
			gotW, gotA := reportSets(t, out)
			sameSet(t, "windows", gotW, wantW)
			sameSet(t, "alerts", gotA, wantA)
		})
	}
}

// kill -9 mid-window, restart with the same state: together the runs
// report exactly the windows and alerts of an uninterrupted run (stdout
// is at-least-once, so rows repeated across a crash count once).
func TestSensorReportKillAndRestart(t *testing.T) {
	const minutes, files, trials = 60, 12, 5
	generated := genSensorFiles(t, "5s", minutes, files)
	wantW, wantA := sensorExpect(t, generated)
	requireBothAlerts(t, wantA)
	box := newInbox(t, generated)
	args := []string{"run", sensorScript, "--source", "dir:" + box.dir + "?poll=20ms", "--state", filepath.Join(t.TempDir(), "state"),
		"--checkpoint-interval", "50ms", "--trigger-interval", "20ms", "--dead-letter", "file:" + filepath.Join(t.TempDir(), "dead.jsonl")}
	var all strings.Builder
	all.WriteString(killTrials(t, box, args, trials, 40*60*minutes/files, 3))
	box.publish(t, files)
	out, stderr, err := eddy(t, append(args, "--until-idle", "-q")...)
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, stderr)
	}
	all.WriteString(out)
	gotW, gotA := reportSets(t, all.String())
	sameSet(t, "windows", gotW, wantW)
	sameSet(t, "alerts", gotA, wantA)
}

func first3(s []string) []string { return s[:min(3, len(s))] }

// The sensor report from a real Kafka topic: the readings produced into a
// one-partition topic (so the topic's order is the files' order), the
// report read from another topic, both checked against the independent
// computation. Needs EDDY_KAFKA_BROKERS (just kafka-up).
func TestSensorReportOnKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.NewTopic(t, brokers, 1)
	out := testenv.NewTopic(t, brokers, 1)
	dir := genSensors(t, "5s", 20)
	wantW, wantA := sensorExpect(t, dir)
	base := "kafka://" + brokers[0] + "/"
	if _, stderr, err := eddy(t, "produce", base+in, "--from", dir); err != nil {
		t.Fatalf("eddy produce: %v\n%s", err, stderr)
	}
	if _, stderr, err := eddy(t, "run", sensorScript, "--source", base+in+"?group="+in+"-report", "--until-idle", "-q",
		"--sink", base+out, "--to", "alerts="+base+out, "--dead-letter", "file:"+filepath.Join(t.TempDir(), "dead.jsonl")); err != nil {
		t.Fatalf("eddy run: %v\n%s", err, stderr)
	}
	report, stderr, err := eddy(t, "consume", base+out, "--from-beginning", "--until-idle")
	if err != nil {
		t.Fatalf("eddy consume: %v\n%s", err, stderr)
	}
	gotW, gotA := reportSets(t, report)
	sameSet(t, "windows", gotW, wantW)
	sameSet(t, "alerts", gotA, wantA)
}
