package scripts_test

import (
	"context"
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
