package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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

	// Fill the disk once the second checkpoint is in; later ones find it full.
	filler, fillErr := "", error(nil)
	exit, stderr := atCheckpoint(t, append(args, "--checkpoint-interval", "50ms", "--trigger-interval", "50ms"), 2,
		func(p *os.Process) {
			if filler, fillErr = fill(mnt, 64<<10); fillErr != nil {
				p.Kill() // the run must not outlive the test's tmpfs
			}
		})
	if fillErr != nil {
		t.Fatal(fillErr)
	}
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
