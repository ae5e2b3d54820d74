package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tmpfs mounts a tmpfs of size (as mount's size=, "32m") on a new
// directory, unmounted when the test ends; it skips the test unless root.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// fill takes all but keep bytes of the free space of dir's file system,
// with a file it returns. A process writing to the file system at the same
// time can take space between the free-space check and the allocation, so
// an allocation refused for want of space is retried against the space
// then free (tmpfs undoes a refused fallocate), a bounded number of times.
func fill(dir string, keep int64) (string, error) {
	path := filepath.Join(dir, "fill")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for try := 0; ; try++ {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return "", err
		}
		n := int64(st.Bavail)*int64(st.Bsize) - keep
		if n <= 0 {
			return path, nil
		}
		err := syscall.Fallocate(int(f.Fd()), 0, 0, n)
		if err == nil {
			return path, nil
		}
		if err != syscall.ENOSPC || try == 20 {
			return "", fmt.Errorf("filling %s to %d bytes free: %w", dir, keep, err)
		}
	}
}

// The state directory's file system fills up during a run: the run stops
// with "no space left on device" naming the directory (not a SIGBUS), and
// once space is freed the next run resumes to the exact result.
func TestStateDiskFull(t *testing.T) {
	mnt := tmpfs(t, "32m")
	flows := genFlows(t, 1_000_000, 16, 0) // large enough that the run outlasts its second checkpoint and the disk fills mid-run
	want := expectedTop20(t, flows)
	dir := filepath.Join(mnt, "state")
	args := []string{"run", netflowScript, "--source", "dir:" + flows, "--until-idle", "--emit", "final", "--state", dir}

	// Fill the disk between two checkpoints (from the second on); the next
	// one finds it full.
	exit, stderr, filler := fillBetweenCheckpoints(t, mnt, append(args, "--checkpoint-interval", "50ms", "--trigger-interval", "50ms", "-v"))
	noStack(t, stderr)
	if exit == 0 || !strings.Contains(stderr, "state dir "+dir+": no space left on device") {
		t.Fatalf("on a full disk: exit %d\n%s", exit, stderr)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	out, stderr, exit := runBounded(t, damagedRunLimit, args...)
	if exit != 0 || out != want || !strings.Contains(stderr, "resuming from checkpoint") {
		t.Fatalf("after freeing space: exit %d\ngot:\n%s\nwant:\n%s\n%s", exit, out, want, stderr)
	}
}

// A file sink on a full disk fails the run saying so, naming the file.
func TestFileSinkDiskFull(t *testing.T) {
	mnt := tmpfs(t, "4m")
	flows := genFlows(t, 20_000, 2, 0)
	if _, err := fill(mnt, 0); err != nil {
		t.Fatal(err)
	}
	sink := filepath.Join(mnt, "top.jsonl")
	_, stderr, exit := runBounded(t, damagedRunLimit, "run", netflowScript, "--source", "dir:"+flows, "--until-idle", "--emit", "final", "--sink", "file:"+sink, "-q")
	noStack(t, stderr)
	if exit == 0 || !strings.Contains(stderr, "file sink "+sink+": write "+sink+": no space left on device") {
		t.Fatalf("file sink on a full disk: exit %d\n%s", exit, stderr)
	}
}

// fillBetweenCheckpoints runs args (with -v) and fills mnt's file system
// once a checkpoint from the second on is complete and the next has not
// begun: the run stopped (SIGSTOP) and its log read to its last line, no
// barrier of a later checkpoint in it. A write the store checked for room
// before the disk filled would meet the full tmpfs as a SIGBUS (the limit
// state/space.go states), which is not what this test is about. Between
// checkpoints the run writes nothing to the store; if the next had begun,
// the run goes on to the next checkpoint. It returns the run's exit code,
// its log and the file that fills the disk.
func fillBetweenCheckpoints(t *testing.T, mnt string, args []string) (exit int, log, filler string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(eddyBin, args...)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	deadline := time.AfterFunc(runLimit, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	var b strings.Builder
	br := bufio.NewReader(r)
	line := func() (string, bool) {
		l, err := br.ReadString('\n')
		b.WriteString(l)
		return l, err == nil
	}
	completes := 0
	for filler == "" {
		l, ok := line()
		if !ok {
			cmd.Wait()
			t.Fatalf("the run ended before the disk could be filled between two checkpoints\n%s", b.String())
		}
		if !strings.Contains(l, `msg="checkpoint complete"`) {
			continue
		}
		if completes++; completes < 2 {
			continue
		}
		stopped(t, cmd.Process)
		// What the stopped run has logged is in the pipe: read it all
		// (TIOCINQ is FIONREAD, the bytes a pipe holds).
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		n += br.Buffered()
		begun := false
		for n > 0 {
			l, _ := line()
			n -= len(l)
			begun = begun || strings.Contains(l, "msg=barrier") && !strings.Contains(l, " epoch=0 ")
		}
		if !begun {
			if filler, err = fill(mnt, 64<<10); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	rest, _ := io.ReadAll(br)
	b.Write(rest)
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	}
	return exit, b.String(), filler
}

// stopped stops p, a child of the test, with SIGSTOP and returns once the
// kernel reports it stopped (waitid WSTOPPED: every thread has stopped).
// The report is left for no one (WNOWAIT); an exit is reported as well,
// so the run's deadline, which kills it, bounds the wait.
func stopped(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.Pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("waiting for pid %d to stop: %v", p.Pid, err)
		}
		break
	}
	if info.Code != cldStopped {
		t.Fatalf("pid %d ended (si_code %d) instead of stopping", p.Pid, info.Code)
	}
}

// cldStopped is si_code CLD_STOPPED: the child stopped on a signal.
const cldStopped = 5
