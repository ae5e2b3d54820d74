package scripts_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// OutageEnv enables the tests that stop and start this checkout's servers
// with services/*.sh: they disturb anything else using those servers, so
// they run only when asked (`EDDY_OUTAGE_TESTS=1 go test ./scripts -run Outage`).
const OutageEnv = "EDDY_OUTAGE_TESTS"

func service(t *testing.T, name, cmd string) {
	t.Helper()
	start := time.Now()
	out, err := exec.Command("bash", filepath.Join("..", "services", name+".sh"), cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("services/%s.sh %s: %v\n%s", name, cmd, err, out)
	}
	t.Logf("services/%s.sh %s took %v: %s", name, cmd, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		<-tick.C
	}
}

// TestServerLogsMariaDBOutage stops MariaDB in the middle of a server-logs
// run and starts it again: the run must hold its checkpoint while the
// tables can't be written, log why, and end with every table exact.
func TestServerLogsMariaDBOutage(t *testing.T) {
	if os.Getenv(OutageEnv) == "" {
		t.Skipf("%s is unset: this test stops and restarts MariaDB with services/mysql.sh; run `%s=1 go test ./scripts -run Outage` with `just mysql-up`", OutageEnv, OutageEnv)
	}
	e := newServerLogsEnv(t)
	const seed, count, bad = 5, 24000, 0.01
	logs := &logBuffer{}
	p := e.load(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	outputs, mem := e.outputs(t, p)
	src, err := connectors.OpenSource("gen:serverlogs?count=24000&seed=5&bad=0.01&rate=2000", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, dead := &connectortest.MemSink{}, &connectortest.MemSink{}
	stats := &actors.Stats{}
	type result struct {
		sum actors.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := actors.Run(context.Background(), actors.Config{Pipeline: p, Source: src, Store: store, Results: results,
			DeadLetters: dead, Outputs: outputs, MaxErrors: 0, Shards: 2, Workers: 2, Stats: stats,
			TriggerInterval: 200 * time.Millisecond, CheckpointInterval: 400 * time.Millisecond})
		done <- result{sum, err}
	}()

	waitFor(t, 60*time.Second, "3000 logs read", func() bool { return stats.Read.Load() >= 3000 })
	service(t, "mysql", "down")
	downAt := time.Now()
	// A checkpoint whose flush was already through may still complete;
	// after that, none can while MariaDB is down.
	time.Sleep(time.Second)
	held := stats.LastCheckpoint.Load()
	readAtHold := stats.Read.Load()
	outage := time.NewTimer(6 * time.Second)
	select {
	case r := <-done:
		t.Fatalf("the run ended during the outage: %v", r.err)
	case <-outage.C:
	}
	if cp := stats.LastCheckpoint.Load(); cp != held {
		t.Fatalf("checkpoint moved from %d to %d while MariaDB was down", held, cp)
	}
	t.Logf("held checkpoint %d for %v while MariaDB was down; read %d then %d logs (backpressure)", held, time.Since(downAt).Round(time.Millisecond), readAtHold, stats.Read.Load())
	service(t, "mysql", "up")
	var r result
	select {
	case r = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the run did not finish after MariaDB came back")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if stats.LastCheckpoint.Load() <= held {
		t.Fatalf("no checkpoint after the outage (last %d)", stats.LastCheckpoint.Load())
	}
	if len(dead.Rows()) > 0 {
		e, _ := dead.Rows()[0].Get("error")
		t.Fatalf("%d dead letters, first: %v", len(dead.Rows()), e)
	}
	out := logs.String()
	for _, want := range []string{"mysql sink: write failed, retrying; the checkpoint waits until it succeeds", "mysql sink: write succeeded after retries"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	e.check(t, expectedLogs(t, seed, count, bad), mem, results)
}

// TestWeatherCassandraOutage stops Cassandra in the middle of a weather
// run and starts it again: the checkpoint holds while Cassandra is down,
// the sink logs its retries, and afterwards the table holds each city's
// last observation and the CSV every observation, exactly once.
func TestWeatherCassandraOutage(t *testing.T) {
	if os.Getenv(OutageEnv) == "" {
		t.Skipf("%s is unset: this test stops and restarts Cassandra with services/cassandra.sh; run `%s=1 go test ./scripts -run Outage` with `just cassandra-up`", OutageEnv, OutageEnv)
	}
	hosts := testenv.Cassandra(t)
	ks := testenv.NewKeyspace(t, hosts)
	const count = 6000
	logs := &logBuffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	src, err := os.ReadFile("weather.lua")
	if err != nil {
		t.Fatal(err)
	}
	p, err := scripting.LoadSource("weather.lua", src, scripting.WithLogger(slog.Default()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "weather.csv")
	outputs := map[string]connectors.Sink{"topic": &connectortest.MemSink{}}
	for name, uri := range map[string]string{
		"weather": strings.Replace(strings.Replace(p.Sinks["weather"], "127.0.0.1:9042", strings.Join(hosts, ","), 1), "/eddy_weather/", "/"+ks+"/", 1),
		"backup":  "file:" + csvPath,
	} {
		if outputs[name], err = connectors.OpenSink(uri); err != nil {
			t.Fatal(err)
		}
	}
	source, err := connectors.OpenSource("gen:weather?count=6000&rate=400&seed=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stats := &actors.Stats{}
	dead := &connectortest.MemSink{}
	done := make(chan error, 1)
	go func() {
		_, err := actors.Run(context.Background(), actors.Config{Pipeline: p, Source: source, Store: store, Outputs: outputs,
			DeadLetters: dead, MaxErrors: 0, Shards: 1, Workers: 2, Stats: stats,
			TriggerInterval: 200 * time.Millisecond, CheckpointInterval: 400 * time.Millisecond})
		done <- err
	}()
	waitFor(t, 60*time.Second, "1000 observations read", func() bool { return stats.Read.Load() >= 1000 })
	service(t, "cassandra", "down")
	time.Sleep(time.Second)
	held := stats.LastCheckpoint.Load()
	select {
	case err := <-done:
		t.Fatalf("the run ended during the outage: %v", err)
	case <-time.After(5 * time.Second):
	}
	if cp := stats.LastCheckpoint.Load(); cp != held {
		t.Fatalf("checkpoint moved from %d to %d while Cassandra was down", held, cp)
	}
	t.Logf("held checkpoint %d while Cassandra was down, %d observations read", held, stats.Read.Load())
	service(t, "cassandra", "up")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the run did not finish after Cassandra came back")
	}
	if len(dead.Rows()) > 0 {
		t.Fatalf("dead letters: %v", dead.Rows()[0])
	}
	for _, want := range []string{"cassandra sink: write failed, retrying; the checkpoint waits until it succeeds", "cassandra sink: write succeeded after retries"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	var buf bytes.Buffer
	if err := gen.Write(&buf, "weather", 3, 0, count, 0); err != nil {
		t.Fatal(err)
	}
	var all []string
	last := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		r := weatherRow(t, []byte(line))
		all = append(all, r)
		last[strings.SplitN(r, "|", 2)[0]] = r
	}
	var lastRows []string
	for _, r := range last {
		lastRows = append(lastRows, r)
	}
	got := weatherTable(t, testenv.CassandraSession(t, hosts, ks))
	sameLines(t, "Cassandra after the outage", lastRows, got)
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var csvRows []string
	for _, r := range recs[1:] {
		csvRows = append(csvRows, strings.Join([]string{r[0], r[1], r[5], r[4], r[2], r[3]}, "|"))
	}
	sameLines(t, "CSV after the outage", all, csvRows)
}

// TestServerLogsLookupOutage stops MariaDB while the pipeline needs the
// users table (refresh every 300ms) but writes nowhere else: lookups must
// wait for the table, not classify against a table they could not read,
// and every log must end up with the status a plain-Go classification
// gives it.
func TestServerLogsLookupOutage(t *testing.T) {
	if os.Getenv(OutageEnv) == "" {
		t.Skipf("%s is unset: this test stops and restarts MariaDB with services/mysql.sh; run `%s=1 go test ./scripts -run Outage` with `just mysql-up`", OutageEnv, OutageEnv)
	}
	e := newServerLogsEnv(t)
	const seed, count, bad = 8, 12000, 0.01
	logs := &logBuffer{}
	src, err := os.ReadFile("server_logs.lua")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "mysql://eddy@127.0.0.1:3306/dim_users/users", e.prefix+"/"+e.usersDB+"/users")
	text = strings.Replace(text, `refresh = "30s"`, `refresh = "300ms"`, 1)
	p, err := scripting.LoadSource("server_logs.lua", []byte(text), scripting.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	status := &connectortest.MemSink{}
	outputs := map[string]connectors.Sink{"good": &connectortest.MemSink{}, "bad": &connectortest.MemSink{}, "suspicious": &connectortest.MemSink{}, "status": status}
	source, err := connectors.OpenSource("gen:serverlogs?count=12000&seed=8&bad=0.01&rate=1500", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, dead := &connectortest.MemSink{}, &connectortest.MemSink{}
	stats := &actors.Stats{}
	done := make(chan error, 1)
	go func() {
		_, err := actors.Run(context.Background(), actors.Config{Pipeline: p, Source: source, Store: store, Results: results,
			DeadLetters: dead, Outputs: outputs, MaxErrors: 0, Shards: 2, Workers: 2, Stats: stats})
		done <- err
	}()
	waitFor(t, 60*time.Second, "2000 logs read", func() bool { return stats.Read.Load() >= 2000 })
	service(t, "mysql", "down")
	time.Sleep(time.Second)
	kept := stats.Kept.Load()
	select {
	case err := <-done:
		t.Fatalf("the run ended during the outage: %v", err)
	case <-time.After(4 * time.Second):
	}
	if k := stats.Kept.Load(); k != kept {
		t.Fatalf("%d logs were classified while the users table could not be read", k-kept)
	}
	service(t, "mysql", "up")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(dead.Rows()) > 0 {
		e, _ := dead.Rows()[0].Get("error")
		t.Fatalf("%d dead letters, first: %v", len(dead.Rows()), e)
	}
	for _, want := range []string{"lookup: the table can't be read; records wait for it", "lookup: the table is readable again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	var want, got []string
	for _, c := range expectedLogs(t, seed, count, bad) {
		want = append(want, c.topicJSON())
	}
	for _, r := range status.Rows() {
		got = append(got, canonicalJSON(t, connectors.AppendJSON(nil, r)))
	}
	sameLines(t, "statuses", want, got)
}
