package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/damage"
)

// A damaged run is over within this; it must not hang.
const damagedRunLimit = time.Minute

// atCheckpoint runs args (with -v, so checkpoints are logged), calls at
// once the log says checkpoint id completed, and returns the run's exit
// code and log. It fails the test when the run ends before that.
func atCheckpoint(t *testing.T, args []string, id int, at func(p *os.Process)) (exit int, log string) {
	t.Helper()
	cmd := exec.Command(eddyBin, append(args, "-v")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(runLimit, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	mark := fmt.Sprintf(`msg="checkpoint complete" id=%d `, id)
	seen := false
	var b strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if !seen && strings.Contains(sc.Text(), mark) {
			at(cmd.Process)
			seen = true
		}
	}
	err = cmd.Wait()
	if !seen {
		t.Fatalf("the run ended (%v) before checkpoint %d completed: make the input larger\n%s", err, id, b.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	}
	return exit, b.String()
}

// runBounded runs eddy with args and fails the test when it is still
// running after limit (it is then killed).
func runBounded(t *testing.T, limit time.Duration, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("eddy %s: still running after %v\n%s", strings.Join(args, " "), limit, errb.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), exit
}

// noStack fails the test when eddy printed a Go stack or a fatal error.
func noStack(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"goroutine ", "panic:", "fatal error", "SIGBUS"} {
		if strings.Contains(stderr, s) {
			t.Fatalf("eddy printed %q:\n%s", s, stderr)
		}
	}
}

// TestDamagedStateDir stops real runs mid-way (SIGINT, so the state is in
// a table, and SIGKILL, so it is in a log), damages copies of their state
// directories by offset, and runs again: each run prints the exact result
// or exits non-zero naming the directory and the file, within a bound.
func TestDamagedStateDir(t *testing.T) {
	if testing.Short() {
		t.Skip("runs eddy some 30 times")
	}
	flows := genFlows(t, 1_000_000, 16, 0) // large enough that a run outlasts 3 checkpoints of 50ms
	want := expectedTop20(t, flows)
	base := []string{"run", netflowScript, "--source", "dir:" + flows, "--until-idle", "--emit", "final"}
	image := func(sig syscall.Signal) string {
		dir := filepath.Join(t.TempDir(), "state")
		atCheckpoint(t, append(base, "--state", dir, "--checkpoint-interval", "50ms", "--trigger-interval", "50ms"), 3,
			func(p *os.Process) { p.Signal(sig) })
		return dir
	}
	stopped, killed := image(syscall.SIGINT), image(syscall.SIGKILL)
	sst := func(d string) string { return damage.One(t, d, "*.sst") }
	type tcase struct {
		name  string
		image string
		hurt  func(dir string)
		// errContains empty: the run prints the exact result.
		errContains string
	}
	tests := []tcase{
		{"intact, stopped", stopped, func(string) {}, ""},
		{"intact, killed", killed, func(string) {}, ""},
		{"4 KiB zeroed mid-table", stopped, func(d string) { damage.Zero(t, sst(d), damage.Size(t, sst(d))/2, 4096) }, "000001.sst"},
		{"table truncated to half", stopped, func(d string) { damage.Truncate(t, sst(d), damage.Size(t, sst(d))/2) }, "000001.sst"},
		{"MANIFEST deleted", stopped, func(d string) { damage.Remove(t, d, "MANIFEST") }, "MANIFEST: missing"},
		{"MANIFEST truncated", stopped, func(d string) {
			damage.Truncate(t, filepath.Join(d, "MANIFEST"), damage.Size(t, filepath.Join(d, "MANIFEST"))/2)
		}, "is gone from the store"},
		{"MANIFEST garbled", stopped, func(d string) {
			damage.Flip(t, filepath.Join(d, "MANIFEST"), damage.Size(t, filepath.Join(d, "MANIFEST"))-3)
		}, "MANIFEST"},
		{"MANIFEST deleted, killed", killed, func(d string) { damage.Remove(t, d, "MANIFEST") }, "MANIFEST: missing"},
		{"memtable log deleted", killed, func(d string) { damage.Remove(t, d, "*.mem") }, "is gone from the store"},
		{"empty value log", killed, func(d string) { damage.Truncate(t, damage.One(t, d, "*.vlog"), 0) }, ""},
	}
	for i := int64(1); i <= 12; i++ {
		tests = append(tests, tcase{fmt.Sprintf("table bytes flipped at %d/13", i), stopped, func(d string) {
			off := damage.Size(t, sst(d)) * i / 13
			damage.Flip(t, sst(d), off, off+1, off+7)
		}, "000001.sst"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := damage.Copy(t, tc.image)
			tc.hurt(dir)
			out, stderr, exit := runBounded(t, damagedRunLimit, append(base, "--state", dir)...)
			noStack(t, stderr)
			if tc.errContains == "" {
				if exit != 0 || out != want {
					t.Fatalf("exit %d; want the exact result\ngot:\n%s\nwant:\n%s\nstderr:\n%s", exit, out, want, stderr)
				}
				return
			}
			for _, s := range []string{tc.errContains, "state dir " + dir + " is damaged", "eddy checkpoints verify --state " + dir, "--reset-state"} {
				if exit == 0 || !strings.Contains(stderr, s) {
					t.Fatalf("exit %d; want a failure saying %q\nstdout:\n%s\nstderr:\n%s", exit, s, out, stderr)
				}
			}
			if out != "" {
				t.Fatalf("a refused run printed results:\n%s", out)
			}
		})
	}
}

// checkpoints verify exits 0 with a summary on an intact directory and 1
// naming the damage otherwise, without changing the directory; run
// --reset-state then starts over, saying so, to the exact result.
func TestCheckpointsVerifyAndReset(t *testing.T) {
	flows := genFlows(t, 100_000, 4, 0)
	want := expectedTop20(t, flows)
	dir := filepath.Join(t.TempDir(), "state")
	args := []string{"run", netflowScript, "--source", "dir:" + flows, "--until-idle", "--emit", "final", "--state", dir, "-q"}
	if _, stderr, exit := runBounded(t, damagedRunLimit, args...); exit != 0 {
		t.Fatalf("first run: exit %d\n%s", exit, stderr)
	}
	out, stderr, exit := runBounded(t, damagedRunLimit, "checkpoints", "verify", "--state", dir)
	if exit != 0 || !strings.Contains(out, dir+": intact: ") {
		t.Fatalf("verify of an intact directory: exit %d\n%s%s", exit, out, stderr)
	}
	damage.Remove(t, dir, "MANIFEST")
	_, stderr, exit = runBounded(t, damagedRunLimit, "checkpoints", "verify", "--state", dir)
	if exit != 1 || !strings.Contains(stderr, "damaged: state dir "+dir+" is damaged: MANIFEST: missing") {
		t.Fatalf("verify without a MANIFEST: exit %d\n%s", exit, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("verify changed the directory: %v", err)
	}
	out, stderr, exit = runBounded(t, damagedRunLimit, append(args[:len(args)-1], "--reset-state")...)
	if exit != 0 || out != want || !strings.Contains(stderr, "--reset-state: deleted every checkpoint and savepoint; starting over from nothing") {
		t.Fatalf("--reset-state: exit %d\n%s%s", exit, out, stderr)
	}
}
