package memio

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eddy-stream/eddy/connectors"
)

// Changelog is an in-memory connectors.Changelog: one log per partition,
// with transactions (Commit appends what was written since the last one,
// then the markers). Offsets count records, markers included. Tests share
// one between runs the way nodes share a Kafka changelog.
type Changelog struct {
	mu      sync.Mutex
	logs    map[string][]clogRecord
	pending map[string][]clogRecord
	// Commits counts commits that wrote something; FailCommit, when set,
	// is returned by the next Commit (which then drops what it had).
	Commits    int
	FailCommit error
}

type clogRecord struct {
	key, value []byte
	marker     *connectors.ChangelogMarker
}

var _ connectors.Changelog = (*Changelog)(nil)

// Write implements connectors.Changelog.
func (c *Changelog) Write(partition string, key, value []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string][]clogRecord{}
	}
	c.pending[partition] = append(c.pending[partition], clogRecord{key: append([]byte(nil), key...), value: value})
}

// Commit implements connectors.Changelog.
func (c *Changelog) Commit(_ context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.FailCommit; err != nil {
		c.FailCommit, c.pending = nil, nil
		return nil, err
	}
	if c.logs == nil {
		c.logs = map[string][]clogRecord{}
	}
	for p, recs := range c.pending {
		c.logs[p] = append(c.logs[p], recs...)
	}
	offsets := map[string]int64{}
	for p, m := range markers {
		m := m
		c.logs[p] = append(c.logs[p], clogRecord{marker: &m})
		offsets[p] = int64(len(c.logs[p]))
	}
	if len(c.pending)+len(markers) > 0 {
		c.Commits++
	}
	c.pending = nil
	return offsets, nil
}

// Abort implements connectors.Changelog.
func (c *Changelog) Abort(context.Context) error {
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
	return nil
}

// End implements connectors.Changelog.
func (c *Changelog) End(_ context.Context, partition string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.logs[partition])), nil
}

// Restore implements connectors.Changelog.
func (c *Changelog) Restore(ctx context.Context, partition string, from int64, apply func(key, value []byte) error,
	progress func(done, total int64)) (connectors.ChangelogMarker, int64, error) {
	c.mu.Lock()
	recs := c.logs[partition]
	c.mu.Unlock()
	var last connectors.ChangelogMarker
	end := int64(len(recs))
	if from > end {
		return last, from, nil
	}
	for i := from; i < end; i++ {
		if err := ctx.Err(); err != nil {
			return last, i, err
		}
		r := recs[i]
		if r.marker != nil {
			last = *r.marker
			continue
		}
		if err := apply(r.key, r.value); err != nil {
			return last, i, fmt.Errorf("changelog of %s at %d: %w", partition, i, err)
		}
	}
	if progress != nil {
		progress(end-from, end-from)
	}
	return last, end, nil
}

// Close implements connectors.Changelog.
func (c *Changelog) Close() error { return nil }

// Keys returns partition's state as the changelog has it: each key's
// newest value (deleted keys left out), and the newest marker as JSON.
func (c *Changelog) Keys(partition string) (map[string]string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	var marker []byte
	for _, r := range c.logs[partition] {
		switch {
		case r.marker != nil:
			marker, _ = json.Marshal(r.marker)
		case r.value == nil:
			delete(out, string(r.key))
		default:
			out[string(r.key)] = string(r.value)
		}
	}
	return out, string(marker)
}
