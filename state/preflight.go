package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Badger trusts its directory: on a damaged one it panics in its own
// goroutines (a truncated table), quietly drops what it cannot read (a
// table failing its checksum at open, a manifest's damaged tail, a log's
// damaged tail) or starts an empty store (no manifest) and deletes the
// tables the manifest does not list. The preflight looks first, in the
// caller's goroutine, where a panic can be recovered, and refuses such a
// directory before Badger changes anything.

// files is what a state directory holds, by kind.
type files struct {
	manifest bool
	tables   map[uint64]string // table id -> file name
	logs     []string          // *.mem and *.vlog with content
}

// data reports whether the directory holds anything a checkpoint may live in.
func (f files) data() bool { return len(f.tables) > 0 || len(f.logs) > 0 }

// listFiles sorts dir's entries by kind. Empty *.mem and *.vlog files are
// removed: a process killed just after Badger created one leaves it empty,
// Badger then refuses the directory ("Create a new file", taking it for one
// it has to create), and an empty file holds no writes.
func listFiles(dir string) (files, error) {
	f := files{tables: map[uint64]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return f, fmt.Errorf("state: read dir %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == badger.ManifestFilename:
			f.manifest = true
		case strings.HasSuffix(name, ".sst"):
			id, ok := table.ParseFileID(name)
			if !ok {
				return f, damaged(dir, name, "not a table file name Badger writes")
			}
			f.tables[id] = name
		case strings.HasSuffix(name, ".mem"), strings.HasSuffix(name, ".vlog"):
			info, err := e.Info()
			if err != nil {
				return f, fmt.Errorf("state: %s: %w", filepath.Join(dir, name), err)
			}
			if info.Size() == 0 {
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					return f, fmt.Errorf("state: remove empty %s: %w", filepath.Join(dir, name), err)
				}
				continue
			}
			f.logs = append(f.logs, name)
		}
	}
	return f, nil
}

// preflight checks dir's manifest and tables before Badger opens it: the
// manifest must read, list only tables that exist, and every table must
// pass its checksums. It returns the tables the manifest does not list
// (orphans), which Badger deletes on open: a crash between writing a table
// and recording it leaves one behind, and so does a truncated manifest.
func preflight(dir string, f files, bopts badger.Options) (orphans []string, err error) {
	if !f.manifest {
		if f.data() {
			return nil, damaged(dir, badger.ManifestFilename, "missing, but the directory holds data files (%s); Badger would start an empty store and delete them", strings.Join(f.names(), ", "))
		}
		return nil, nil
	}
	m, err := readManifest(dir, bopts)
	if err != nil {
		return nil, err
	}
	for id := range m.Tables {
		if _, ok := f.tables[id]; !ok {
			return nil, damaged(dir, table.IDToFilename(id), "listed in the %s but missing", badger.ManifestFilename)
		}
	}
	for id, name := range f.tables {
		tm, ok := m.Tables[id]
		if !ok {
			orphans = append(orphans, name)
			continue
		}
		if err := checkTable(dir, name, tm, bopts); err != nil {
			return nil, err
		}
	}
	slices.Sort(orphans)
	return orphans, nil
}

func (f files) names() []string {
	var out []string
	for _, n := range f.tables {
		out = append(out, n)
	}
	out = append(out, f.logs...)
	slices.Sort(out)
	return out
}

func readManifest(dir string, bopts badger.Options) (m badger.Manifest, err error) {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return m, damaged(dir, badger.ManifestFilename, "%w", err)
	}
	defer fp.Close()
	defer recoverAs(&err, func(p any) error {
		return damaged(dir, badger.ManifestFilename, "unreadable (%v)", p)
	})
	m, _, err = badger.ReplayManifestFile(fp, bopts.ExternalMagicVersion, bopts)
	if err != nil {
		return m, damaged(dir, badger.ManifestFilename, "%w", err)
	}
	return m, nil
}

// checkTable opens one table read-only as Badger would and verifies every
// block's checksum.
func checkTable(dir, name string, tm badger.TableManifest, bopts badger.Options) (err error) {
	path := filepath.Join(dir, name)
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return damaged(dir, name, "%w", err)
	}
	var t *table.Table
	defer func() {
		if t == nil {
			mf.Close(-1) // OpenTable closes it on some errors but not on panics
		}
	}()
	defer recoverAs(&err, func(p any) error {
		if _, ok := p.(runtime.Error); ok {
			// Badger's checksum pass dereferences the block it failed to read.
			return damaged(dir, name, "a block fails its checksum, or the table cannot be parsed")
		}
		return damaged(dir, name, "fails its checksums or cannot be parsed (Badger: %s)", firstLine(p))
	})
	t, err = table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		ChkMode:     options.OnTableRead,
		BlockSize:   bopts.BlockSize,
		Compression: tm.Compression,
	})
	if err != nil {
		t = nil
		return damaged(dir, name, "%w", err)
	}
	return mf.Close(-1)
}

// recoverAs turns a panic into *err = wrap(the panic value).
func recoverAs(err *error, wrap func(any) error) {
	if p := recover(); p != nil {
		*err = wrap(p)
	}
}

// firstLine keeps a panic message to its first non-empty line: Badger's
// table panics append a dump of the file's footer.
func firstLine(p any) string {
	for _, l := range strings.Split(fmt.Sprint(p), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return fmt.Sprint(p)
}

// lockDir takes the flock Badger holds on a directory it has open, so the
// preflight never looks at a directory a running process is changing.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errInUse(dir)
		}
		return nil, fmt.Errorf("state: lock %s: %w", dir, err)
	}
	return func() {
		syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		d.Close()
	}, nil
}

func errInUse(dir string) error {
	return fmt.Errorf("state dir %s is in use by another eddy process", dir)
}

// keepOrphans hard-links tables the manifest does not list into
// dir/orphans/, since Badger deletes them on open. After a crash they are
// spare copies of data the logs still hold, and are removed once the store
// checks out (dropOrphans); otherwise they are the evidence of a damaged
// manifest and stay.
func keepOrphans(dir string, orphans []string) error {
	if len(orphans) == 0 {
		return nil
	}
	od := filepath.Join(dir, orphanDir)
	if err := os.MkdirAll(od, 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	for _, name := range orphans {
		dst := filepath.Join(od, name)
		os.Remove(dst)
		if err := os.Link(filepath.Join(dir, name), dst); err != nil {
			return fmt.Errorf("state: keep %s: %w", name, err)
		}
	}
	return nil
}

const orphanDir = "orphans"

func dropOrphans(dir string) { os.RemoveAll(filepath.Join(dir, orphanDir)) }
