package state

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNoCheckpoint is returned by Last when no checkpoint was ever completed, and
// wrapped by reads at an epoch that is not a kept complete checkpoint, so callers
// can start from empty state with errors.Is(err, ErrNoCheckpoint).
var ErrNoCheckpoint = errors.New("no complete checkpoint")

// ErrDamaged is wrapped by every error about a state directory whose files are
// damaged or missing (a *DamageError), so callers can tell the user how to
// recover with errors.Is(err, ErrDamaged).
var ErrDamaged = errors.New("state directory is damaged")

var errClosed = errors.New("state: store is closed")

// DamageError says which file of a state directory is damaged and how. Open
// refuses such a directory rather than read state that may be wrong.
type DamageError struct {
	Dir  string // the state directory
	File string // the damaged or missing file, relative to Dir; "" when not one file
	Err  error  // what is wrong
}

func (e *DamageError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("state dir %s is damaged: %v", e.Dir, e.Err)
	}
	return fmt.Sprintf("state dir %s is damaged: %s: %v", e.Dir, e.File, e.Err)
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

func (e *DamageError) Unwrap() error { return e.Err }

func damaged(dir, file string, format string, a ...any) *DamageError {
	return &DamageError{Dir: dir, File: file, Err: fmt.Errorf(format, a...)}
}

// NoSpaceError is returned, before anything is written, by a write that the
// state directory's file system has no room for. Badger writes through
// memory-mapped files, where a full disk is a crash (SIGBUS) and not an
// error, so the store checks first. It wraps syscall.ENOSPC.
type NoSpaceError struct {
	Dir        string
	Free, Need int64 // bytes free on the file system, and needed by the write
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("state dir %s: no space left on device: %s free, the next write needs %s; free some space and run again to resume from the last checkpoint",
		e.Dir, bytesString(e.Free), bytesString(e.Need))
}

func (e *NoSpaceError) Unwrap() error { return syscall.ENOSPC }

func bytesString(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
