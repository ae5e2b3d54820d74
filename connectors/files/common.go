package files

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSource("dir", func(t connectors.Target) (connectors.Source, error) { return OpenDir(t) },
		"poll", "max-files-per-trigger", connectors.MaxRecordSizeParam, "on-loss")
	connectors.RegisterSource("file", func(t connectors.Target) (connectors.Source, error) { return OpenFile(t) },
		"poll", "from", connectors.MaxRecordSizeParam, "wait")
	connectors.RegisterSink("file", func(t connectors.Target) (connectors.Sink, error) { return OpenSink(t) })
	connectors.DeclareReach("dir", connectors.Reach{Path: true})
	connectors.DeclareReach("file", connectors.Reach{Path: true})
}

// Limits of one batch: the engine's messages stay small and a batch never
// spans two files.
const (
	maxBatchRecords = 1024
	maxBatchBytes   = 1 << 20
)

// DefaultPoll is how long a caught-up dir: or file: source waits for new
// data before it reports caught up again.
const DefaultPoll = 200 * time.Millisecond

// pathOf returns the path a target names: "dir:data/x" and "dir:/abs" as
// written, "file:///abs" as "/abs".
func pathOf(t connectors.Target) (string, error) {
	rest := t.LocalPath()
	if rest == "" {
		return "", fmt.Errorf("no path: write %s:PATH", t.Scheme)
	}
	abs, err := filepath.Abs(rest)
	if err != nil {
		return "", err
	}
	return abs, nil
}

// idler gives dir: and file: their caught-up rhythm: the first time there is
// nothing to read after records were returned, say so at once; after that,
// wait one poll interval for news before saying it again, so a caller that
// keeps reading a quiet source does not spin.
type idler struct {
	poll time.Duration
	owed bool // records were returned since the last CaughtUp
}

// read calls next, which reports whether it found records; when it found
// none, read returns a CaughtUp batch built by idle, waiting a poll
// interval first and trying next once more unless a CaughtUp is owed.
func (d *idler) read(ctx context.Context, next func() (connectors.Batch, bool, error), idle func() connectors.Batch) (connectors.Batch, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Batch{}, err
	}
	b, ok, err := next()
	if err != nil || ok {
		d.owed = d.owed || ok
		return b, err
	}
	if !d.owed {
		t := time.NewTimer(d.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return connectors.Batch{}, ctx.Err()
		case <-t.C:
		}
		b, ok, err = next()
		if err != nil || ok {
			d.owed = ok
			return b, err
		}
	}
	d.owed = false
	b = idle()
	b.CaughtUp = true
	return b, nil
}
