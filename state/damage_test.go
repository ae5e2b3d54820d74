package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/damage"
)

// damageCheckpoints is how many checkpoints the damage tests' stores hold.
const damageCheckpoints = 5

// damageChange is checkpoint i's writes: 3000 keys of which it rewrites a
// third and deletes a few, with values long enough to fill a few blocks.
func damageChange(i int) change {
	ch := change{}
	for k := range 3000 {
		switch {
		case (k+i)%3 == 0:
			ch[fmt.Sprintf("key/%04d", k)] = val(fmt.Sprintf("cp%d:%s", i, strings.Repeat("v", 40+k%50)))
		case (k+i)%17 == 0 && i > 1:
			ch[fmt.Sprintf("key/%04d", k)] = nil
		}
	}
	return ch
}

// storeImage is a state directory with damageCheckpoints checkpoints and
// the state each of them holds. closed is a store closed cleanly (its
// state in a table); otherwise it is a copy taken while the store was open
// between checkpoints, as kill -9 would leave it (its state in a *.mem log).
// walEnd[i] is how much of the log checkpoint i+1 reached.
type storeImage struct {
	dir    string
	want   []map[string]string
	walEnd []int64
}

func buildImage(t *testing.T, closed bool) storeImage {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	img := storeImage{dir: dir}
	model := map[string]string{}
	for i := 1; i <= damageCheckpoints; i++ {
		ch := damageChange(i)
		checkpoint(t, s, ch)
		for k, v := range ch {
			if v == nil {
				delete(model, k)
			} else {
				model[k] = *v
			}
		}
		img.want = append(img.want, clone(model))
		img.walEnd = append(img.walEnd, logBytes(dir))
	}
	if closed {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return img
	}
	img.dir = damage.Copy(t, dir)
	s.Close()
	return img
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestOpenDamaged damages a state directory by offset and checks that Open
// either restores a checkpoint exactly as written (the last, or an older one
// it says it fell back to) or refuses with a DamageError naming the file,
// never a panic or a wrong state.
func TestOpenDamaged(t *testing.T) {
	closed, killed := buildImage(t, true), buildImage(t, false)
	sst := func(dir string) string { return damage.One(t, dir, "*.sst") }
	mem := func(dir string) string { return damage.One(t, dir, "*.mem") }
	tests := []struct {
		name   string
		image  storeImage
		damage func(dir string)
		// errContains empty: Open must succeed, with checkpoint fallBack
		// (0: the last) restored exactly.
		errContains string
		fallBack    int
	}{
		{name: "intact, closed", image: closed, damage: func(string) {}},
		{name: "intact, killed", image: killed, damage: func(string) {}},
		{name: "4 KiB zeroed mid-table", image: closed, damage: func(d string) {
			damage.Zero(t, sst(d), damage.Size(t, sst(d))/2, 4096)
		}, errContains: "000001.sst"},
		{name: "table truncated to half", image: closed, damage: func(d string) {
			damage.Truncate(t, sst(d), damage.Size(t, sst(d))/2)
		}, errContains: "000001.sst"},
		{name: "MANIFEST deleted", image: closed, damage: func(d string) {
			damage.Remove(t, d, "MANIFEST")
		}, errContains: "MANIFEST: missing, but the directory holds data files"},
		{name: "MANIFEST deleted, killed", image: killed, damage: func(d string) {
			damage.Remove(t, d, "MANIFEST")
		}, errContains: "MANIFEST: missing, but the directory holds data files"},
		{name: "MANIFEST truncated", image: closed, damage: func(d string) {
			m := filepath.Join(d, "MANIFEST")
			damage.Truncate(t, m, damage.Size(t, m)/2)
		}, errContains: "is gone from the store"},
		{name: "MANIFEST garbled", image: closed, damage: func(d string) {
			m := filepath.Join(d, "MANIFEST")
			damage.Flip(t, m, damage.Size(t, m)-3)
		}, errContains: "MANIFEST: manifest has checksum mismatch"},
		{name: "memtable log deleted", image: killed, damage: func(d string) {
			damage.Remove(t, d, "*.mem")
		}, errContains: "checkpoint 5, the last one completed (EDDY-CHECKPOINT says so), is gone"},
		{name: "memtable log damaged after checkpoint 2", image: killed, damage: func(d string) {
			damage.Flip(t, mem(d), (killed.walEnd[1]+killed.walEnd[2])/2)
		}, fallBack: 2},
		{name: "memtable log damaged in checkpoint 1", image: killed, damage: func(d string) {
			damage.Flip(t, mem(d), killed.walEnd[0]/2)
		}, errContains: "checkpoint 5, the last one completed (EDDY-CHECKPOINT says so), is gone"},
		{name: "empty value log (killed while creating it)", image: killed, damage: func(d string) {
			damage.Truncate(t, damage.One(t, d, "*.vlog"), 0)
		}},
	}
	// Three flipped bytes at each of twelve offsets through the table.
	for i := 1; i <= 12; i++ {
		tests = append(tests, struct {
			name        string
			image       storeImage
			damage      func(dir string)
			errContains string
			fallBack    int
		}{name: fmt.Sprintf("table bytes flipped at %d/13", i), image: closed, damage: func(d string) {
			off := damage.Size(t, sst(d)) * int64(i) / 13
			damage.Flip(t, sst(d), off, off+1, off+7)
		}, errContains: "000001.sst"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := damage.Copy(t, tc.image.dir)
			tc.damage(dir)
			var logs bytes.Buffer
			s, err := Open(dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if tc.errContains != "" {
				if err == nil {
					last, _ := s.Last()
					s.Close()
					t.Fatalf("Open succeeded (last checkpoint %d), want an error containing %q", last.ID, tc.errContains)
				}
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.errContains) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("Open: %v\nwant ErrDamaged naming %s and %q", err, dir, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			want := damageCheckpoints
			if tc.fallBack > 0 {
				want = tc.fallBack
				if !strings.Contains(logs.String(), "falling back to an older checkpoint") {
					t.Errorf("fell back without a warning; log:\n%s", logs.String())
				}
			}
			last, err := s.Last()
			if err != nil || last.ID != uint64(want) {
				t.Fatalf("Last = %d, %v; want checkpoint %d", last.ID, err, want)
			}
			checkView(t, s, last.ID, tc.image.want[want-1])
		})
	}
}

// A directory in which no checkpoint ever completed, left unopenable by a
// process killed while creating it, starts afresh, saying so; one in which
// a checkpoint may have completed is refused.
func TestOpenNeverCompleted(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := Open(dir, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatalf("Open of a directory no checkpoint completed in: %v", err)
	}
	s.Close()
	if !strings.Contains(logs.String(), "proves none ever completed") {
		t.Fatalf("started afresh without saying so; log:\n%s", logs.String())
	}

	s = openT(t, dir)
	checkpoint(t, s, change{"k": val("v")})
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open after a checkpoint completed, MANIFEST garbled: %v, want ErrDamaged", err)
	}
}

// Open writes the record only when it changes: reopening a closed store
// leaves the file as it was (a write replaces it with a new file), and a
// store reopened after a crash in its first checkpoint's Complete
// (record "completing", no checkpoint) gets the record of none again.
func TestOpenKeepsAnUnchangedRecord(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	checkpoint(t, s, change{"k": val("v")})
	s.Close()
	before, err := os.Stat(filepath.Join(dir, recordName))
	if err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	s.Close()
	after, err := os.Stat(filepath.Join(dir, recordName))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("reopening a closed store wrote its unchanged record again")
	}

	fresh := t.TempDir()
	s = openT(t, fresh)
	s.Close()
	if err := writeRecord(fresh, record{Completing: 1}); err != nil {
		t.Fatal(err)
	}
	s = openT(t, fresh)
	s.Close()
	if rec, _, err := readRecord(fresh); err != nil || rec != (record{}) {
		t.Errorf("after reopening, the record is %+v (%v), want %+v", rec, err, record{})
	}
}

// Verify reports what Open would refuse, without changing the directory.
func TestVerify(t *testing.T) {
	img := buildImage(t, false)
	r, err := Verify(img.dir)
	if err != nil || len(r.Damaged) != 0 || len(r.Checkpoints) != damageCheckpoints {
		t.Fatalf("Verify of an intact directory: %+v, %v", r, err)
	}
	for i, cp := range r.Checkpoints {
		if cp.Keys != int64(len(img.want[i])) {
			t.Errorf("checkpoint %d: %d keys, want %d", cp.ID, cp.Keys, len(img.want[i]))
		}
	}
	mem := damage.One(t, img.dir, "*.mem")
	damage.Flip(t, mem, (img.walEnd[1]+img.walEnd[2])/2)
	before, err := os.ReadFile(mem)
	if err != nil {
		t.Fatal(err)
	}
	r, err = Verify(img.dir)
	if err != nil || len(r.Damaged) == 0 || !strings.Contains(r.Damaged[0].Error(), "checkpoint 5, the last one completed") {
		t.Fatalf("Verify of a damaged log: %+v, %v", r, err)
	}
	if after, _ := os.ReadFile(mem); !bytes.Equal(before, after) {
		t.Fatal("Verify changed the directory's log")
	}
}

// A checkpoint whose keys no longer add up to its digest is damaged.
func TestCheckDigest(t *testing.T) {
	s := openT(t, t.TempDir())
	checkpoint(t, s, change{"a": val("1"), "b": val("2")})
	checkpoint(t, s, change{"a": val("3"), "b": nil, "c": val("4")})
	last, _ := s.Last()
	if err := s.check(&last); err != nil {
		t.Fatalf("check of an intact checkpoint: %v", err)
	}
	last.Digest ^= 1
	if err := s.check(&last); !errors.Is(err, ErrDamaged) {
		t.Fatalf("check with a wrong digest: %v, want ErrDamaged", err)
	}
}
