package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Report is what Verify found in a state directory.
type Report struct {
	Checkpoints []Checkpoint // every kept checkpoint, oldest first, each read back whole
	Damaged     []error      // what failed, each naming its file or checkpoint; empty when all is well
	Size        int64        // bytes the directory's files use
}

// Verify checks the state directory dir without changing it: the manifest
// and every table's checksums, then each kept checkpoint read back whole
// against its key count and digest, and the record of the last checkpoint.
// Badger rewrites parts of a directory it opens (it truncates logs and
// deletes tables its manifest does not list), so Verify opens a copy, made
// in a temporary directory. The returned error is for failures to verify
// at all (no such directory, one in use); damage goes into the Report.
func Verify(dir string) (Report, error) {
	var r Report
	unlock, err := lockDir(dir)
	if err != nil {
		return r, err
	}
	tmp, err := os.MkdirTemp("", "eddy-verify-")
	if err != nil {
		unlock()
		return r, fmt.Errorf("state: verify: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = copyDir(dir, tmp)
	unlock()
	if err != nil {
		return r, fmt.Errorf("state: verify %s: copy it to %s: %w", dir, tmp, err)
	}
	if f, err := listFiles(tmp); err == nil && !f.manifest && !f.data() {
		return r, fmt.Errorf("state: %s holds no state (no Badger files)", dir)
	}
	rec, hasRecord, err := readRecord(tmp)
	if err != nil {
		r.Damaged = append(r.Damaged, err)
	}
	s, err := openCopy(tmp, dir)
	if err != nil {
		r.Damaged = append(r.Damaged, err)
		return r, nil
	}
	defer s.db.Close()
	r.Size = s.Size()
	if hasRecord && s.lastID() < rec.Last {
		r.Damaged = append(r.Damaged, damaged(dir, "", "checkpoint %d, the last one completed (%s says so), is gone from the store: Badger's MANIFEST or a *.mem log was deleted, truncated or damaged", rec.Last, recordName))
	}
	for i := range s.cps {
		if err := s.check(&s.cps[i]); err != nil {
			r.Damaged = append(r.Damaged, err)
		}
		r.Checkpoints = append(r.Checkpoints, s.cps[i].clone())
	}
	return r, nil
}

// openCopy opens the copy tmp of dir after the preflight, with errors
// naming dir.
func openCopy(tmp, dir string) (*Store, error) {
	cfg := defaultConfig()
	f, err := listFiles(tmp)
	if err != nil {
		return nil, renameDir(err, tmp, dir)
	}
	// Badger deletes the tables the manifest does not list, as a run's Open
	// does; only the copy's. Whether that loses anything shows in the
	// checkpoints read back afterwards.
	if _, err := preflight(tmp, f, badgerOptions(tmp, cfg)); err != nil {
		return nil, renameDir(err, tmp, dir)
	}
	s, err := openBadger(tmp, cfg)
	if err != nil {
		return nil, renameDir(err, tmp, dir)
	}
	s.dir = dir // for errors; the store's files are tmp's
	if err := s.load(); err != nil {
		s.db.Close()
		return nil, damaged(dir, "", "read the checkpoints: %w", err)
	}
	return s, nil
}

func renameDir(err error, tmp, dir string) error {
	var d *DamageError
	if errors.As(err, &d) {
		d.Dir = dir
		d.Err = errors.New(strings.ReplaceAll(d.Err.Error(), tmp, dir))
	}
	return err
}

// copyDir copies the files of src into dst, leaving holes where src's
// blocks are zero (Badger's logs are mostly preallocated zeros).
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		if err := copySparse(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], size); err != nil {
				return err
			}
		}
		size += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return out.Truncate(size)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
