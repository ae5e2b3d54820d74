package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// scrapeLimit bounds the wait for each of the scrapes TestMetricsMove
// expects: a loaded machine starts eddy and reads records well within it.
const scrapeLimit = time.Minute

// TestMetricsMove: eddy run --http serves /metrics in the Prometheus text
// format, with eddy's series typed and its record counters moving between
// two scrapes; SIGTERM still stops it.
func TestMetricsMove(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(eddyBin, "run", netflowScript, "--source", "gen:netflow?count=100000000",
		"--http", addr, "--state", filepath.Join(t.TempDir(), "state"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	body, first := scrapeUntil(t, addr, exited, func(read, kept float64) bool { return read > 0 })
	for _, typ := range []string{
		"# TYPE eddy_records_read_total counter",
		"# TYPE eddy_records_kept_total counter",
		"# TYPE eddy_partition_offset gauge",
		"# TYPE eddy_batch_latency_seconds histogram",
		"# TYPE eddy_lua_seconds_total counter",
		"# TYPE go_goroutines gauge",
		"# TYPE process_cpu_seconds_total counter",
	} {
		if !strings.Contains(body, typ) {
			t.Errorf("no %q in /metrics:\n%.3000s", typ, body)
		}
	}
	_, later := scrapeUntil(t, addr, exited, func(read, kept float64) bool { return read > first[0] && kept > first[1] })
	t.Logf("records read %v then %v, kept %v then %v", first[0], later[0], first[1], later[1])

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM:\n%s", code, stderr.String())
		}
	case <-time.After(stopBound):
		t.Fatalf("eddy still runs %v after SIGTERM", stopBound)
	}
}

// scrapeUntil GETs /metrics at addr until done says yes to its records read
// and kept, and returns the body and those two; it fails the test once
// scrapeLimit has passed or eddy has exited.
func scrapeUntil(t *testing.T, addr string, exited <-chan error, done func(read, kept float64) bool) (string, [2]float64) {
	t.Helper()
	deadline := time.Now().Add(scrapeLimit)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("eddy exited (%v) before its metrics moved; last scrape:\n%.3000s", err, last)
		default:
		}
		body, err := get(addr + "/metrics")
		var answered *statusapi.StatusError
		switch {
		case errors.As(err, &answered):
			t.Fatalf("GET /metrics: %d %s", answered.Code, answered.Msg)
		case err != nil: // eddy is starting: ask again
			last = err.Error()
			continue
		}
		last = body
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics is not in the Prometheus text format: %v\n%.3000s", err, body)
		}
		var v [2]float64
		for i, name := range []string{"eddy_records_read_total", "eddy_records_kept_total"} {
			if f := fams[name]; f != nil && len(f.GetMetric()) == 1 {
				v[i] = f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if done(v[0], v[1]) {
			return body, v
		}
	}
	t.Fatalf("the record counters did not move within %v; last scrape:\n%.3000s", scrapeLimit, last)
	return "", [2]float64{}
}

func get(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", &statusapi.StatusError{Code: resp.StatusCode, Msg: string(b)}
	}
	return string(b), err
}
