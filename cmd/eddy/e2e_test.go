package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/reference"
)

// These tests run the eddy binary as a user would, in a subprocess.

var eddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-bin-")
	if err != nil {
		panic(err)
	}
	eddyBin = filepath.Join(dir, "eddy")
	out, err := exec.Command("go", "build", "-o", eddyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building eddy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const netflowScript = "../../scripts/netflow_webservers.lua"

// eddy runs the binary and returns stdout and stderr.
// A run that takes longer than this is hung: it gets a SIGQUIT, so its
// goroutines show in stderr, and the test fails instead of waiting out the
// test binary's timeout.
const runLimit = 2 * time.Minute

func eddy(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("eddy %s: still running after %v (hung?)\n%s", strings.Join(args, " "), runLimit, stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// expectedTop20 computes the netflow answer with plain Go, independently of
// eddy (internal/reference).
func expectedTop20(t *testing.T, dir string) string {
	t.Helper()
	counts, err := reference.NetflowCountsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return reference.Top(counts, 20)
}

func genFlows(t *testing.T, count int64, files int, bad float64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "flows")
	if err := gen.WriteDir(dir, "netflow", 42, count, files, bad); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNetflowBatch(t *testing.T) {
	dir := genFlows(t, 200_000, 8, 0.01)
	want := expectedTop20(t, dir)
	if strings.Count(want, "\n") != 20 {
		t.Fatalf("expected table has %d rows", strings.Count(want, "\n"))
	}
	out, stderr, err := eddy(t, "run", netflowScript, "--source", "dir:"+dir, "--until-idle", "--emit", "final", "-q", "--dead-letter", "file:"+filepath.Join(t.TempDir(), "dead.jsonl"))
	if err != nil {
		t.Fatalf("eddy run: %v\n%s", err, stderr)
	}
	if out != want {
		t.Fatalf("stdout differs from the independent computation\ngot:\n%s\nwant:\n%s", out, want)
	}
}

// A streaming run, one file per trigger, ends with exactly the batch table:
// one table per file, each row numbered with its table, and the last table
// not repeated when the input ends.
func TestNetflowStreamingEqualsBatch(t *testing.T) {
	const files = 6
	dir := genFlows(t, 60_000, files, 0.01)
	want := expectedTop20(t, dir)
	out, stderr, err := eddy(t, "run", netflowScript, "--source", "dir:"+dir, "--until-idle", "--emit", "complete",
		"--max-files-per-trigger", "1", "--trigger-interval", "1h", "-q", "--dead-letter", "file:"+filepath.Join(t.TempDir(), "dead.jsonl"))
	if err != nil {
		t.Fatalf("eddy run: %v\n%s", err, stderr)
	}
	tables := completeTables(t, out)
	if len(tables) != files {
		t.Fatalf("%d tables for %d files: want one trigger per file, and the last table once", len(tables), files)
	}
	if last := tables[len(tables)-1]; last != want {
		t.Fatalf("last table differs from the batch result\ngot:\n%s\nwant:\n%s", last, want)
	}
	if tables[0] == want {
		t.Fatalf("the first trigger's table already equals the final one: triggers did not follow files")
	}
}

// completeTables splits complete-mode output into its tables by each row's
// trigger field, checking they count 1, 2, …, and returns each table's
// lines without that field.
func completeTables(t *testing.T, out string) []string {
	t.Helper()
	var tables []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndex(line, `,"trigger":`)
		if i < 0 || !strings.HasSuffix(line, "}\n") {
			t.Fatalf("complete-mode row without a trigger field: %q", line)
		}
		n, err := strconv.Atoi(line[i+len(`,"trigger":`) : len(line)-2])
		switch {
		case err != nil:
			t.Fatalf("row %q: trigger: %v", line, err)
		case n == len(tables)+1:
			tables = append(tables, "")
		case n != len(tables):
			t.Fatalf("row %q follows table %d", line, len(tables))
		}
		tables[n-1] += line[:i] + "}\n"
	}
	return tables
}

// kill -9 mid-work, restart with the same --state each time: the final
// result equals the independent computation exactly.
func TestNetflowKillAndRestart(t *testing.T) {
	const count, files, trials = 400_000, 16, 6
	generated := genFlows(t, count, files, 0.005)
	want := expectedTop20(t, generated)
	box := newInbox(t, generated)
	stateDir := filepath.Join(t.TempDir(), "state")
	args := []string{"run", netflowScript, "--source", "dir:" + box.dir + "?poll=20ms", "--state", stateDir, "--emit", "final",
		"--checkpoint-interval", "100ms", "--trigger-interval", "50ms", "--dead-letter", "file:" + filepath.Join(t.TempDir(), "dead.jsonl")}
	killTrials(t, box, args, trials, count/files, 1)
	cps, stderr, err := eddy(t, "checkpoints", "list", "--state", stateDir)
	if err != nil || !strings.Contains(cps, "dir:") {
		t.Fatalf("checkpoints list after %d kills: %v\n%s%s", trials, err, cps, stderr)
	}
	box.publish(t, files)
	out, stderr, err := eddy(t, append(args, "--until-idle", "-q")...)
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, stderr)
	}
	if out != want {
		t.Fatalf("after %d kills the result differs\ngot:\n%s\nwant:\n%s", trials, out, want)
	}
}

func TestEddyTestCommand(t *testing.T) {
	out, stderr, err := eddy(t, "test", netflowScript, "../../scripts/tshark_ips.lua")
	if err != nil {
		t.Fatalf("eddy test: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "5 passed, 0 failed") {
		t.Fatalf("eddy test output:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.lua")
	os.WriteFile(bad, []byte(`return { parse = eddy.json { k = "string" }, key = "k", aggregate = { n = eddy.count() },
  tests = { { name = "off by one", input = { '{"k":"a"}' }, want = { { k = "a", n = 2 } } } } }`), 0o644)
	out, _, err = eddy(t, "test", bad)
	// The form docs/pipelines.md shows.
	const diff = "FAIL  bad.lua: off by one\n  results differ (- want, + got):\n  - {\"k\":\"a\",\"n\":2}\n  + {\"k\":\"a\",\"n\":1}\n"
	if err == nil || !strings.Contains(out, diff) {
		t.Fatalf("a failing test: err=%v\n%s", err, out)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		errContains string
	}{
		{"no such script", []string{"run", "nope.lua"}, "pipeline: open nope.lua: no such file or directory"},
		{"unknown scheme", []string{"run", netflowScript, "--source", "ftp://x"}, `unknown scheme "ftp"`},
		{"missing dir", []string{"run", netflowScript, "--source", "dir:/no/such/dir", "--until-idle"}, "/no/such/dir"},
		{"bad emit", []string{"run", netflowScript, "--emit", "often"}, `emit: want update, complete or final, got "often"`},
		{"max errors", []string{"run", netflowScript, "--source", "gen:netflow?count=5000&bad=0.2", "--max-errors", "3", "--until-idle"}, "more than --max-errors 3 allows"},
		{"unknown generator", []string{"gen", "nosuch"}, `"nosuch"`},
		{"lua memory too small", []string{"run", netflowScript, "--lua-memory", "100KiB"}, "--lua-memory: 100KiB is below the least a Lua state needs, 1MiB"},
		{"lua memory not a size", []string{"run", netflowScript, "--lua-memory", "lots"}, `--lua-memory: want a size such as "64MiB", "512KiB" or "1GiB", got "lots"`},
		{"lua timeout zero", []string{"run", netflowScript, "--lua-timeout", "0s"}, `--lua-timeout: want a positive duration such as 500ms or 5s, got "0s"`},
		{"unknown lookup", []string{"run", "../../scripts/server_logs.lua", "--lookup", "nosuch=mysql://eddy@127.0.0.1:3306/db/t"}, "--lookup nosuch: server_logs.lua has no lookup of that name (lookups: users)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := eddy(t, tc.args...)
			if err == nil {
				t.Fatal("want a failing exit")
			}
			if !strings.Contains(stderr, tc.errContains) {
				t.Fatalf("stderr lacks %q:\n%s", tc.errContains, stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("a user error printed a stack trace:\n%s", stderr)
			}
		})
	}
}

// A filter over its memory or time limit fails its record only: the
// record goes to dead letters with the script, line and limit, the others
// are counted, and the process ends by itself; with --max-errors 0 the
// run stops with the limit's message and a failing exit.
func TestRunHostileFilter(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "filter.lua")
	writeFile(t, script, `return {
  parse = eddy.json { dstdevice = "string", dstport = "string" },
  filter = function(flow)
    if flow.dstport == "bomb" then
      local s = "x"
      while true do s = s .. s end
    elseif flow.dstport == "backtrack" then
      string.find(string.rep("a", 5000), ".-.-.-.-.-.-.-.-b")
    end
    return true
  end,
  key = "dstdevice",
  aggregate = { count = eddy.count() },
  emit = "final",
}
`)
	input := filepath.Join(dir, "flows.jsonl")
	writeFile(t, input, `{"dstdevice":"A","dstport":"80"}
{"dstdevice":"A","dstport":"bomb"}
{"dstdevice":"B","dstport":"443"}
{"dstdevice":"B","dstport":"backtrack"}
{"dstdevice":"A","dstport":"80"}
`)
	tests := []struct {
		name       string
		args       []string
		wantFail   bool
		errContain string
	}{
		{"dead letters", nil, false, ""},
		{"max errors", []string{"--max-errors", "0"}, true, "more than --max-errors 0 allows; the last: filter: filter.lua: call stopped after the 2s time limit at filter.lua:8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dead := filepath.Join(t.TempDir(), "dead.jsonl")
			args := append([]string{"run", script, "--source", "file:" + input, "--until-idle", "--workers", "1",
				"--lua-memory", "16MiB", "--lua-timeout", "2s", "--dead-letter", "file:" + dead}, tc.args...)
			start := time.Now()
			stdout, stderr, err := eddy(t, args...)
			if took := time.Since(start); took > time.Minute {
				t.Errorf("the run took %v", took)
			}
			if strings.Contains(stderr, "fatal error") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("a Go fatal error or stack:\n%s", stderr)
			}
			if tc.wantFail {
				if err == nil || !strings.Contains(stderr, tc.errContain) {
					t.Fatalf("exit %v, want a failure with %q in stderr:\n%s", err, tc.errContain, stderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("exit %v:\n%s", err, stderr)
			}
			if !strings.Contains(stdout, `"A"`) || !strings.Contains(stdout, `"B"`) {
				t.Fatalf("results lack A or B:\n%s", stdout)
			}
			letters, rerr := os.ReadFile(dead)
			if rerr != nil {
				t.Fatal(rerr)
			}
			for _, want := range []string{
				"filter: filter.lua:6: memory limit of 16 MiB exceeded (string concat of 16 MiB",
				"filter: filter.lua: call stopped after the 2s time limit at filter.lua:8",
			} {
				if !strings.Contains(string(letters), want) {
					t.Errorf("dead letters lack %q:\n%s", want, letters)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
