package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/state"
)

// rows is where a Table keeps its rows: in memory (memRows) or in the
// node's state (keptRows). The Table serializes apply and close against
// everything else (its mu held to write); get, len and load may run
// concurrently with each other.
type rows interface {
	// apply takes in records in offset order per partition.
	apply(recs []*kgo.Record) error
	get(key string) (map[string]any, bool, error)
	len() int
	load() (map[string]map[string]any, error)
	close() error
}

// memRows holds every row decoded, in memory.
type memRows struct {
	topic string
	rows  map[string]map[string]any
	bad   map[string]error // keys whose newest value is not a JSON object
}

func newMemRows(topic string) *memRows {
	return &memRows{topic: topic, rows: map[string]map[string]any{}, bad: map[string]error{}}
}

func (m *memRows) apply(recs []*kgo.Record) error {
	for _, r := range recs {
		if !isRow(r) {
			continue
		}
		key := string(r.Key)
		delete(m.bad, key)
		if r.Value == nil {
			delete(m.rows, key)
			continue
		}
		row, err := rowOf(m.topic, r)
		if err != nil {
			delete(m.rows, key)
			m.bad[key] = err
			continue
		}
		m.rows[key] = row
	}
	return nil
}

func (m *memRows) get(key string) (map[string]any, bool, error) {
	if err := m.bad[key]; err != nil {
		return nil, false, err
	}
	row, ok := m.rows[key]
	return row, ok, nil
}

func (m *memRows) len() int { return len(m.rows) }

func (m *memRows) load() (map[string]map[string]any, error) { return maps.Clone(m.rows), nil }

func (m *memRows) close() error { return nil }

// keptRows keeps the rows in a state.Table, each stored as a kind byte
// and the record's value: rowKind and the JSON object as Kafka held it,
// or badKind and the error a lookup of its key gives. A cache holds
// decoded rows: memory grows with the cache, not with the table.
type keptRows struct {
	topic string
	store *state.Table
	cache *rowCache
	buf   []state.TableChange // reused by apply
}

const (
	rowKind byte = 'j'
	badKind byte = 'x'
)

func (k *keptRows) positions() map[int32]int64 { return k.store.Meta().Positions }

func (k *keptRows) apply(recs []*kgo.Record) error {
	changes := k.buf[:0]
	for _, r := range recs {
		c := state.TableChange{Partition: r.Partition, Next: r.Offset + 1}
		if isRow(r) {
			c.Key = r.Key
			c.Value = k.encode(r)
		}
		changes = append(changes, c)
	}
	k.buf = changes[:0]
	err := k.store.Write(changes)
	// Written or not, what the cache held of these keys may be stale.
	k.cache.drop(changes)
	clear(changes)
	return err
}

// encode is what the store keeps of a record: nil for a tombstone.
func (k *keptRows) encode(r *kgo.Record) []byte {
	if r.Value == nil {
		return nil
	}
	// Checked without decoding (a lookup decodes it); one that fails is
	// decoded for parseRow's message, the one an in-memory table gives.
	if !isObject(r.Value) {
		if _, err := rowOf(k.topic, r); err != nil {
			return append([]byte{badKind}, err.Error()...)
		}
	}
	return append([]byte{rowKind}, r.Value...)
}

// isObject says whether v is one JSON object, as parseRow accepts it.
func isObject(v []byte) bool {
	trimmed := bytes.TrimLeft(v, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(v)
}

func (k *keptRows) get(key string) (map[string]any, bool, error) {
	c, ok, gen := k.cache.get(key)
	if ok {
		return c.row, c.found, c.err
	}
	v, found, err := k.store.Get([]byte(key))
	if err != nil {
		return nil, false, fmt.Errorf("kafka table %q: %w", k.topic, err) // not cached: it may pass
	}
	if found {
		c.row, c.err = k.decode(key, v)
		c.found = c.err == nil
	}
	k.cache.put(key, c, gen)
	return c.row, c.found, c.err
}

func (k *keptRows) decode(key string, v []byte) (map[string]any, error) {
	if len(v) > 0 {
		switch v[0] {
		case rowKind:
			row, err := parseRow(v[1:])
			if err == nil {
				return row, nil
			}
		case badKind:
			return nil, errors.New(string(v[1:]))
		}
	}
	return nil, fmt.Errorf("kafka table %q: the stored row of key %q is damaged (%d bytes that are no row eddy wrote) in %s; stop eddy and remove that directory to read the table again from its topic",
		k.topic, key, len(v), k.store.Dir())
}

func (k *keptRows) len() int { return int(k.store.Meta().Rows) }

func (k *keptRows) load() (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	err := k.store.Scan(func(key, v []byte) error {
		if len(v) > 0 && v[0] == badKind {
			return nil
		}
		row, err := k.decode(string(key), v)
		if err != nil {
			return err
		}
		out[string(key)] = row
		return nil
	})
	return out, err
}

func (k *keptRows) close() error { return k.store.Close() }

// rowCache holds decoded rows (and misses and errors) by key, up to max
// of them; when full it drops an arbitrary sixteenth, so a hit takes only
// a read lock. gen counts the writes dropped from it: a row read from the
// store while a write of its key went in is not cached (it may be the
// older one).
type rowCache struct {
	mu  sync.RWMutex
	m   map[string]cachedRow
	max int
	gen uint64
}

type cachedRow struct {
	row   map[string]any
	found bool
	err   error
}

func newRowCache(max int) *rowCache { return &rowCache{m: map[string]cachedRow{}, max: max} }

// get returns key's row if cached, and the generation to put it with if
// not.
func (c *rowCache) get(key string) (cachedRow, bool, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[key]
	return r, ok, c.gen
}

// put caches r, read from the store at generation gen, unless a write
// went in since.
func (c *rowCache) put(key string, r cachedRow, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= c.max {
		n := max(1, c.max/16)
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[key] = r
}

// drop forgets the keys changes write.
func (c *rowCache) drop(changes []state.TableChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, ch := range changes {
		if ch.Key != nil {
			delete(c.m, string(ch.Key))
		}
	}
}
