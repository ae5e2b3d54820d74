package state

import "errors"

// ErrNoCheckpoint is returned by Last when no checkpoint was ever completed, and
// wrapped by reads at an epoch that is not a kept complete checkpoint, so callers
// can start from empty state with errors.Is(err, ErrNoCheckpoint).
var ErrNoCheckpoint = errors.New("no complete checkpoint")

var errClosed = errors.New("state: store is closed")
