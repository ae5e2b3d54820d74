package scripts_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// The outage tests put a testenv.Proxy between the pipeline and the
// server it writes to or reads from, and cut it: to the pipeline that is
// the server gone (open connections reset, new ones refused), while the
// server itself, which other tests share, runs on. The test's own checks
// talk to the server directly.

// backgroundRun is a pipeline running in the test's process.
type backgroundRun struct {
	done chan struct{}
	sum  actors.Summary
	err  error
}

// startPipeline runs cfg in the background with cfg.Store on a state
// directory of the test's own; when the test ends the run is cancelled
// and waited for (a minute at most) before the store closes.
func startPipeline(t *testing.T, cfg actors.Config) *backgroundRun {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	ctx, cancel := context.WithCancel(context.Background())
	r := &backgroundRun{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.sum, r.err = actors.Run(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
			store.Close()
		case <-time.After(time.Minute):
			t.Errorf("the run did not stop within a minute of its cancel; its store stays open")
		}
	})
	return r
}

// waitFor polls cond every 50ms until it holds; it fails the test when the
// run ends first or d passes.
func (r *backgroundRun) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.done:
			t.Fatalf("the run ended (%v) before %s", r.err, what)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
	}
}

// wait waits up to d for the run to end and returns its error.
func (r *backgroundRun) wait(t *testing.T, d time.Duration, what string) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("the run did not end within %v %s", d, what)
		return nil
	}
}

var attemptField = regexp.MustCompile(` attempt=(\d+)`)

// attempts is the highest attempt= of the log lines that hold msg.
func attempts(logs, msg string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if m := attemptField.FindStringSubmatch(line); m != nil && strings.Contains(line, msg) {
			a, _ := strconv.Atoi(m[1])
			n = max(n, a)
		}
	}
	return n
}

var barrierEpoch = regexp.MustCompile(`msg=barrier seq=\d+ epoch=(\d+)`)

// lastBarrierBefore is the highest checkpoint epoch of the barriers the
// run logged (at debug level) before its first line holding msg.
func lastBarrierBefore(t *testing.T, logs, msg string) uint64 {
	t.Helper()
	i := strings.Index(logs, msg)
	if i < 0 {
		t.Fatalf("the log has no %q", msg)
	}
	var last uint64
	for _, m := range barrierEpoch.FindAllStringSubmatch(logs[:i], -1) {
		e, _ := strconv.ParseUint(m[1], 10, 64)
		last = max(last, e)
	}
	return last
}

// holdsCheckpoint cuts proxy under a running pipeline whose sink logs
// failed (with attempt=N) on each failed write, waits for the fifth
// attempt (1.5s of retries at least), checks that no checkpoint completed
// whose barrier came after the first failure, and restores the proxy. A
// checkpoint whose barrier came before it may complete: its rows may have
// been written before the cut. It returns the last checkpoint held.
func holdsCheckpoint(t *testing.T, r *backgroundRun, stats *actors.Stats, proxy *testenv.Proxy, logs *logBuffer, failed string) uint64 {
	t.Helper()
	proxy.Cut()
	cutAt, readAtCut := time.Now(), stats.Read.Load()
	r.waitFor(t, 2*time.Minute, "the sink's fifth attempt at a write", func() bool { return attempts(logs.String(), failed) >= 5 })
	held := lastBarrierBefore(t, logs.String(), failed)
	if cp := stats.LastCheckpoint.Load(); cp > held {
		t.Fatalf("checkpoint %d completed during the outage, though its barrier came after the sink's first failed write (last barrier before it: %d)", cp, held)
	}
	t.Logf("held checkpoint %d (barrier %d) for %v of outage; read %d then %d records (backpressure); %d connections had gone through the proxy",
		stats.LastCheckpoint.Load(), held, time.Since(cutAt).Round(time.Millisecond), readAtCut, stats.Read.Load(), proxy.Accepted())
	proxy.Restore()
	return held
}

// debugLogger logs the run at debug level (its barriers) into logs.
func debugLogger(logs *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// useLogger makes l the default logger (the sinks log through it) until
// the test ends.
func useLogger(t *testing.T, l *slog.Logger) {
	prev := slog.Default()
	slog.SetDefault(l)
	t.Cleanup(func() { slog.SetDefault(prev) })
}

// mysqlThroughProxy points e's sinks and lookup at a proxy to its MariaDB
// server; the test's own connections stay direct.
func mysqlThroughProxy(t *testing.T, e *serverLogsEnv) *testenv.Proxy {
	t.Helper()
	cfg, err := mysql.ParseDSN(testenv.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, cfg.Addr)
	e.prefix = "mysql://" + cfg.User + "@" + proxy.Addr()
	return proxy
}

// TestServerLogsMariaDBOutage cuts MariaDB off in the middle of a
// server-logs run and brings it back: the run must hold its checkpoint
// while the tables can't be written, log why, and end with every table
// exact.
func TestServerLogsMariaDBOutage(t *testing.T) {
	e := newServerLogsEnv(t)
	proxy := mysqlThroughProxy(t, e)
	const seed, count, bad = 5, 24000, 0.01
	logs := &logBuffer{}
	info := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := e.load(t, info)
	useLogger(t, info)
	outputs, mem := e.outputs(t, p)
	src, err := connectors.OpenSource("gen:serverlogs?count=24000&seed=5&bad=0.01&rate=2000", nil)
	if err != nil {
		t.Fatal(err)
	}
	results, dead := &connectortest.MemSink{}, &connectortest.MemSink{}
	stats := &actors.Stats{}
	r := startPipeline(t, actors.Config{Pipeline: p, Source: src, Results: results, DeadLetters: dead, Outputs: outputs,
		MaxErrors: 0, Shards: 2, Workers: 2, Stats: stats, Logger: debugLogger(logs),
		TriggerInterval: 200 * time.Millisecond, CheckpointInterval: 400 * time.Millisecond})

	r.waitFor(t, time.Minute, "3000 logs read", func() bool { return stats.Read.Load() >= 3000 })
	held := holdsCheckpoint(t, r, stats, proxy, logs, "mysql sink: write failed, retrying; the checkpoint waits until it succeeds")
	if err := r.wait(t, 3*time.Minute, "after MariaDB came back"); err != nil {
		t.Fatal(err)
	}
	if stats.LastCheckpoint.Load() <= held {
		t.Fatalf("no checkpoint after the outage (last %d)", stats.LastCheckpoint.Load())
	}
	if len(dead.Rows()) > 0 {
		e, _ := dead.Rows()[0].Get("error")
		t.Fatalf("%d dead letters, first: %v", len(dead.Rows()), e)
	}
	if !strings.Contains(logs.String(), "mysql sink: write succeeded after retries") {
		t.Errorf("the log lacks the sink's recovery")
	}
	e.check(t, expectedLogs(t, seed, count, bad), mem, results)
}

// TestWeatherCassandraOutage cuts Cassandra off in the middle of a
// weather run and brings it back: the checkpoint holds while Cassandra
// can't be reached, the sink logs its retries, and afterwards the table
// holds each city's last observation and the CSV every observation,
// exactly once. (The proxy stands for one node: with a cluster of several
// the driver would find the others by itself.)
func TestWeatherCassandraOutage(t *testing.T) {
	hosts := testenv.Cassandra(t)
	ks := testenv.NewKeyspace(t, hosts)
	proxy := testenv.NewProxy(t, hosts[0])
	const count = 6000
	logs := &logBuffer{}
	useLogger(t, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	src, err := os.ReadFile("weather.lua")
	if err != nil {
		t.Fatal(err)
	}
	p, err := scripting.LoadSource("weather.lua", src, scripting.WithLogger(slog.Default()))
	if err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(t.TempDir(), "weather.csv")
	outputs := map[string]connectors.Sink{"topic": &connectortest.MemSink{}}
	for name, uri := range map[string]string{
		"weather": strings.Replace(strings.Replace(p.Sinks["weather"], "127.0.0.1:9042", proxy.Addr(), 1), "/eddy_weather/", "/"+ks+"/", 1),
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
	stats := &actors.Stats{}
	dead := &connectortest.MemSink{}
	r := startPipeline(t, actors.Config{Pipeline: p, Source: source, Outputs: outputs,
		DeadLetters: dead, MaxErrors: 0, Shards: 1, Workers: 2, Stats: stats, Logger: debugLogger(logs),
		TriggerInterval: 200 * time.Millisecond, CheckpointInterval: 400 * time.Millisecond})
	r.waitFor(t, time.Minute, "1000 observations read", func() bool { return stats.Read.Load() >= 1000 })
	holdsCheckpoint(t, r, stats, proxy, logs, "cassandra sink: write failed, retrying; the checkpoint waits until it succeeds")
	if err := r.wait(t, 5*time.Minute, "after Cassandra came back"); err != nil {
		t.Fatal(err)
	}
	if len(dead.Rows()) > 0 {
		t.Fatalf("dead letters: %v", dead.Rows()[0])
	}
	if !strings.Contains(logs.String(), "cassandra sink: write succeeded after retries") {
		t.Errorf("the log lacks the sink's recovery")
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

// TestServerLogsLookupOutage cuts MariaDB off while the pipeline needs the
// users table (refresh every 300ms) but writes nowhere else: lookups must
// wait for the table, not classify against a table they could not read,
// and every log must end up with the status a plain-Go classification
// gives it.
func TestServerLogsLookupOutage(t *testing.T) {
	e := newServerLogsEnv(t)
	proxy := mysqlThroughProxy(t, e)
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
	results, dead := &connectortest.MemSink{}, &connectortest.MemSink{}
	stats := &actors.Stats{}
	r := startPipeline(t, actors.Config{Pipeline: p, Source: source, Results: results,
		DeadLetters: dead, Outputs: outputs, MaxErrors: 0, Shards: 2, Workers: 2, Stats: stats})
	r.waitFor(t, time.Minute, "2000 logs read", func() bool { return stats.Read.Load() >= 2000 })
	proxy.Cut()
	// The table is shared by the parse workers and read under a lock: from
	// the first failed read on, no record gets past its lookup. Batches
	// parsed just before may still be counted as kept; by the third
	// attempt (300ms of retries) they have been.
	const waiting = "lookup: the table can't be read; records wait for it"
	r.waitFor(t, time.Minute, "the lookup's third attempt", func() bool { return attempts(logs.String(), waiting) >= 3 })
	kept := stats.Kept.Load()
	r.waitFor(t, time.Minute, "the lookup's fifth attempt", func() bool { return attempts(logs.String(), waiting) >= 5 })
	if k := stats.Kept.Load(); k != kept {
		t.Fatalf("%d logs were classified while the users table could not be read", k-kept)
	}
	proxy.Restore()
	if err := r.wait(t, 3*time.Minute, "after MariaDB came back"); err != nil {
		t.Fatal(err)
	}
	if len(dead.Rows()) > 0 {
		e, _ := dead.Rows()[0].Get("error")
		t.Fatalf("%d dead letters, first: %v", len(dead.Rows()), e)
	}
	if !strings.Contains(logs.String(), "lookup: the table is readable again") {
		t.Errorf("the log lacks the lookup's recovery")
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
