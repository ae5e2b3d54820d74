package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash child writes checkpoints into the dir named by this variable until it
// is killed.
const crashEnv = "EDDY_STATE_CRASH_DIR"

const crashKeys = 1000

// crashOp says what epoch e does to key i: 's' set, 'd' delete, 0 nothing.
func crashOp(e uint64, i int) byte {
	h := fnv.New64a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], e)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	h.Write(b[:])
	switch x := h.Sum64(); {
	case x%3 == 0:
		return 's'
	case x%11 == 0:
		return 'd'
	}
	return 0
}

func crashKey(i int) string { return fmt.Sprintf("key/%04d", i) }

func crashValue(e uint64, i int) string {
	return fmt.Sprintf("e%d:k%d:%s", e, i, strings.Repeat("x", int(e+uint64(i))%64))
}

// crashChild writes checkpoints forever, two batches per epoch, and reports each
// step on stdout.
func crashChild(dir string) error {
	s, err := Open(dir, WithKeep(3))
	if err != nil {
		return err
	}
	for {
		e, err := s.Begin()
		if err != nil {
			return err
		}
		fmt.Printf("begun %d\n", e)
		batches := []*Batch{s.Batch(e), s.Batch(e)}
		for i := range crashKeys {
			b := batches[i%2]
			switch crashOp(e, i) {
			case 's':
				err = b.Set([]byte(crashKey(i)), []byte(crashValue(e, i)))
			case 'd':
				err = b.Delete([]byte(crashKey(i)))
			}
			if err != nil {
				return err
			}
		}
		for _, b := range batches {
			if err := b.Commit(); err != nil {
				return err
			}
		}
		if err := s.Complete(Checkpoint{ID: e, Positions: map[string][]byte{"p": []byte(fmt.Sprint(e))}}); err != nil {
			return err
		}
		fmt.Printf("complete %d\n", e)
	}
}

// TestCrash kills a writer with SIGKILL at random moments and checks that every
// kept checkpoint reads exactly what its complete epochs wrote.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		err := crashChild(dir)
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(1)
	}
	if testing.Short() {
		t.Skip("crash test runs a subprocess; skipped with -short")
	}
	dir := t.TempDir()
	complete := map[uint64]bool{}
	var maxBegun uint64
	for round := range 5 {
		lines := runAndKill(t, dir, 1+rand.IntN(12))
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 2 {
				t.Fatalf("round %d: child said %q", round, l)
			}
			e, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("round %d: child said %q", round, l)
			}
			switch f[0] {
			case "begun":
				maxBegun = max(maxBegun, e)
			case "complete":
				complete[e] = true
			}
		}
		verifyCrash(t, dir, round, complete, maxBegun)
	}
}

// runAndKill runs the crash child on dir, SIGKILLs it at a random moment after
// it has printed n lines, and returns everything it printed.
func runAndKill(t *testing.T, dir string, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
	deadline := time.AfterFunc(2*time.Minute, kill) // a stuck child fails the test, not hangs it
	defer deadline.Stop()

	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == n {
			// Land anywhere in the next checkpoint or two.
			time.AfterFunc(time.Duration(rand.IntN(3000))*time.Microsecond, kill)
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash child ended with %v, not SIGKILL (printed %q)", err, lines)
	}
	return lines
}

// verifyCrash reopens dir and checks every kept checkpoint against a model built
// from the complete epochs. complete gains Last().ID when the child died between
// completing it and saying so.
func verifyCrash(t *testing.T, dir string, round int, complete map[uint64]bool, maxBegun uint64) {
	t.Helper()
	s, err := Open(dir, WithKeep(3))
	if err != nil {
		t.Fatalf("round %d: reopen: %v", round, err)
	}
	defer s.Close()
	var said uint64
	for e := range complete {
		said = max(said, e)
	}
	last, err := s.Last()
	if errors.Is(err, ErrNoCheckpoint) && said == 0 {
		last.ID = 0 // killed before the first checkpoint completed
	} else if err != nil {
		t.Fatalf("round %d: Last: %v", round, err)
	}
	if last.ID != said && (last.ID != said+1 || last.ID > maxBegun+1) {
		t.Fatalf("round %d: Last = %d; child reported complete up to %d, begun up to %d", round, last.ID, said, maxBegun)
	}
	if last.ID > 0 {
		complete[last.ID] = true
	}
	if last.ID > 0 && string(last.Positions["p"]) != fmt.Sprint(last.ID) {
		t.Fatalf("round %d: checkpoint %d has position %q", round, last.ID, last.Positions["p"])
	}
	cps, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		want := map[string]string{}
		for i := range crashKeys {
			for e := cp.ID; e > 0; e-- {
				if !complete[e] {
					continue
				}
				if op := crashOp(e, i); op == 's' {
					want[crashKey(i)] = crashValue(e, i)
					break
				} else if op == 'd' {
					break
				}
			}
		}
		checkView(t, s, cp.ID, want)
		if cp.Keys != int64(len(want)) {
			t.Fatalf("round %d: checkpoint %d: Keys = %d, want %d", round, cp.ID, cp.Keys, len(want))
		}
	}
	e, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if e <= maxBegun || e <= last.ID {
		t.Fatalf("round %d: Begin after crash = %d; epoch %d was already begun", round, e, max(maxBegun, last.ID))
	}
	t.Logf("round %d: %d checkpoints complete, last %d, Begin gives %d", round, len(complete), last.ID, e)
}
