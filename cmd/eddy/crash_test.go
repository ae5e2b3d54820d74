package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/internal/statusapi"
)

// The crash tests kill eddy at points they have seen the run reach (a
// checkpoint in its log, a count of records read in its status), never
// after a guessed delay: a timer lands before the start on a slow machine
// and after the end on a fast one. Each trial reads a directory that the
// test fills one generated file at a time (an inbox), so the run can't
// reach the end of its input before the test kills it, however fast or
// slow the machine is.

// inbox is a directory eddy reads (dir: picks up files that appear later)
// and the generated files not yet moved into it.
type inbox struct {
	dir     string
	pending []string // generated, not yet moved in, in lexical order
}

// newInbox returns an empty inbox beside the directory of generated files.
func newInbox(t *testing.T, generated string) *inbox {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(generated, "part-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated files in %s: %v", generated, err)
	}
	sort.Strings(files)
	dir := filepath.Join(filepath.Dir(generated), "inbox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &inbox{dir: dir, pending: files}
}

// publish moves the next n generated files in (all that are left when
// fewer), each by one rename so eddy never sees half a file.
func (b *inbox) publish(t *testing.T, n int) {
	t.Helper()
	n = min(n, len(b.pending))
	for _, f := range b.pending[:n] {
		if err := os.Rename(f, filepath.Join(b.dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	b.pending = b.pending[n:]
}

// liveRun is an eddy run the test watches while it goes: the checkpoints
// its debug log reports on stderr and its status at --http.
type liveRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	news   chan struct{} // a new stderr line; capacity 1
	exited chan struct{} // closed once the process has been waited for

	mu          sync.Mutex
	stderr      strings.Builder
	addr        string
	checkpoints []loggedCheckpoint
}

// loggedCheckpoint is one "checkpoint complete" line of eddy run -v.
type loggedCheckpoint struct {
	id      uint64
	changed int64 // keys this checkpoint wrote
}

var (
	servingLine    = regexp.MustCompile(`msg="serving status and state" addr=(\S+)`)
	checkpointLine = regexp.MustCompile(`msg="checkpoint complete" id=(\d+) keys=\d+ changed=(\d+)`)
)

// startLive starts eddy with args plus the debug log and a status server
// on a free port; the process is killed when the test ends.
func startLive(t *testing.T, args ...string) *liveRun {
	t.Helper()
	r := &liveRun{news: make(chan struct{}, 1), exited: make(chan struct{})}
	r.cmd = exec.Command(eddyBin, append(args, "-v", "--http", "127.0.0.1:0")...)
	r.cmd.Env = append(os.Environ(), statusapi.RuntimeDirEnv+"="+t.TempDir())
	r.cmd.Stdout = &r.stdout
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.scan(stderr)
		r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
	})
	return r
}

// scan reads stderr to its end, keeping every line and noting the status
// address and each completed checkpoint.
func (r *liveRun) scan(stderr interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.stderr.WriteString(line + "\n")
		if m := servingLine.FindStringSubmatch(line); m != nil {
			r.addr = m[1]
		}
		if m := checkpointLine.FindStringSubmatch(line); m != nil {
			id, _ := strconv.ParseUint(m[1], 10, 64)
			changed, _ := strconv.ParseInt(m[2], 10, 64)
			r.checkpoints = append(r.checkpoints, loggedCheckpoint{id, changed})
		}
		r.mu.Unlock()
		select {
		case r.news <- struct{}{}:
		default:
		}
	}
}

// tail is the end of what the run wrote on stderr so far.
// allLog is the run's whole stderr so far.
func (r *liveRun) allLog() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

func (r *liveRun) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stderr.String()
	return s[max(0, len(s)-4000):]
}

// waitFor checks cond after every stderr line and every 10ms until it
// holds; it fails the test when the run exits first or runLimit passes.
func (r *liveRun) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(runLimit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.news:
		case <-tick.C:
		case <-r.exited:
			if cond() {
				return
			}
			t.Fatalf("the run ended (%v) before %s\n%s", r.cmd.ProcessState, what, r.tail())
		case <-deadline.C:
			t.Fatalf("no %s within %v\n%s", what, runLimit, r.tail())
		}
	}
}

// checkpointWith waits for a checkpoint of this run that wrote state (so
// it covers records this run read) and returns it.
func (r *liveRun) checkpointWith(t *testing.T) loggedCheckpoint {
	t.Helper()
	var cp loggedCheckpoint
	r.waitFor(t, "checkpoint that wrote state", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.checkpoints {
			if c.changed > 0 {
				cp = c
				return true
			}
		}
		return false
	})
	return cp
}

// status asks the run's status server; ok is false while it is starting.
func (r *liveRun) status() (st actors.Status, ok bool) {
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	if addr == "" {
		return st, false
	}
	b, err := statusapi.Fetch(context.Background(), addr, "/status")
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// waitRead waits until the run has read at least n records and returns how
// many it had.
func (r *liveRun) waitRead(t *testing.T, n int64) int64 {
	t.Helper()
	var read int64
	r.waitFor(t, strconv.FormatInt(n, 10)+" records read", func() bool {
		st, ok := r.status()
		read = st.Read
		return ok && st.Read >= n
	})
	return read
}

// kill sends SIGKILL and fails the test unless that is what ended the run.
func (r *liveRun) kill(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the run ended by itself (%v), not by the kill\n%s", r.cmd.ProcessState, r.tail())
	}
}

// lastCheckpoint is the newest checkpoint the run logged (zero if none).
func (r *liveRun) lastCheckpoint() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.checkpoints) == 0 {
		return 0
	}
	return r.checkpoints[len(r.checkpoints)-1].id
}

// killTrials runs eddy with args (a dir: source on box, one --state for
// every trial) n times in turn and kills each with SIGKILL mid-work: it
// moves a file in, starts the run, waits for a checkpoint of the run's
// own that wrote state, moves the next file in, and kills the run when
// its status shows it has read into that file, up to a random point in
// its first nine tenths (a file holds perFile records). Every trial resumes from the checkpoint the one
// before it completed; the test fails when one does not. It returns what
// the runs printed on stdout.
func killTrials(t *testing.T, box *inbox, args []string, n int, perFile int64, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var out strings.Builder
	var prev uint64 // the last checkpoint the trial before logged
	for i := range n {
		box.publish(t, 1)
		r := startLive(t, args...)
		cp := r.checkpointWith(t)
		if cp.id <= prev {
			t.Fatalf("trial %d: checkpoint %d after the one before reached %d: it did not resume", i, cp.id, prev)
		}
		read := r.waitRead(t, 0)
		box.publish(t, 1)
		target := read + 1 + rng.Int64N(perFile*9/10)
		at := r.waitRead(t, target)
		r.kill(t)
		prev = r.lastCheckpoint()
		t.Logf("trial %d: checkpoint %d wrote %d keys; killed after %d records read (target %d), last checkpoint %d",
			i, cp.id, cp.changed, at, target, prev)
		out.WriteString(r.stdout.String())
	}
	return out.String()
}
