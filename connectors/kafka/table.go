package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterLookup("kafka", func(t connectors.Target, key string) (connectors.Lookup, error) { return OpenTable(t, key) },
		append(connParams, "bootstrap", "bootstrap-timeout", "cache-rows")...)
	connectors.DeclareTable("kafka")
}

// Table is a lookup table read from a compacted Kafka topic, like Kafka
// Streams' GlobalKTable: every process reads every partition of the topic
// and follows it as it grows. A record's key is the row's key, its value
// (a JSON object) the row, and a null value (a tombstone) deletes the row.
//
// Where the rows are kept: in memory, read from the topic's start at each
// start, unless KeepIn gave it a directory of the node's state; then in a
// Badger table there (state.Table) with, in the same transactions, the
// position read to in each partition, so a restart reads only the topic's
// tail after them, and memory holds only a cache of decoded rows.
//
// Which rows a lookup sees: the table as read at the moment of the lookup.
// With bootstrap (the default) Start returns only once every record the
// topic held when it was called has been read, so the run's first records
// see all of them; later updates apply to the records looked up after the
// reader took them in.
type Table struct {
	conn      Conn
	topic     string
	bootstrap bool
	// bootstrapTimeout bounds the wait for the table's end at start.
	bootstrapTimeout time.Duration
	cacheRows        int    // rows a kept table keeps decoded in memory
	dir              string // from KeepIn; "" keeps the rows in memory
	log              *slog.Logger

	mu     sync.RWMutex // guards rows' content and seen; held to write
	rows   rows
	failed error           // why the reader stopped, if it did
	seen   map[int32]int64 // per partition, the offset after the last record read
	read   atomic.Int64    // records read from the topic since Start (for tests)

	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ connectors.Table     = (*Table)(nil)
	_ connectors.KeptTable = (*Table)(nil)
)

// OpenTable reads the URI kafka://BROKERS/TOPIC of a table lookup. The
// table's key is the Kafka record key, so key (a column name, for other
// lookups) must be empty. It does not connect: Start does.
func OpenTable(t connectors.Target, key string) (*Table, error) {
	if key != "" {
		return nil, fmt.Errorf("a kafka table is keyed by the record key: leave out key = %q", key)
	}
	c, err := ParseConn(t)
	if err != nil {
		return nil, err
	}
	if len(c.Topics) != 1 {
		return nil, fmt.Errorf("a kafka table reads one topic: write kafka://HOST:PORT/TOPIC")
	}
	bootstrap, err := t.Choice("bootstrap", "true", "true", "false")
	if err != nil {
		return nil, err
	}
	timeout, err := t.DurationParam("bootstrap-timeout", 5*time.Minute)
	if err != nil {
		return nil, err
	}
	cache, err := t.IntParam("cache-rows", defaultCacheRows, 1)
	if err != nil {
		return nil, err
	}
	return &Table{conn: c, topic: c.Topics[0], bootstrap: bootstrap == "true", bootstrapTimeout: timeout, cacheRows: int(cache),
		log: slog.Default(), seen: map[int32]int64{}}, nil
}

// defaultCacheRows is how many decoded rows a kept table holds in memory
// unless the URI's cache-rows says otherwise.
const defaultCacheRows = 100_000

// KeepIn makes Start keep the table's rows in dir (a Badger database of
// its own) instead of in memory.
func (t *Table) KeepIn(dir string) { t.dir = dir }

// Start checks the topic, opens the rows (a kept table checks what it
// stored against the topic, see openKept), starts reading the topic after
// the rows' positions and, with bootstrap, waits until the table holds
// every record the topic held at the call. A missing topic is refused,
// naming it; a topic that is not compacted is read, with a warning.
func (t *Table) Start(ctx context.Context) error {
	adm, err := t.conn.NewClient()
	if err != nil {
		return err
	}
	info, err := t.check(ctx, kadm.NewClient(adm))
	adm.Close()
	if err != nil {
		return fmt.Errorf("kafka table %q: %w", t.topic, err)
	}
	if err := t.openRows(info); err != nil {
		return fmt.Errorf("kafka table %q: %w", t.topic, err)
	}
	cl, err := t.conn.NewClient(append(t.consumeFrom(info),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets: keeping
		// them lets the reader see that it reached the end offset.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		t.rows.close()
		return err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	t.cl, t.cancel, t.done = cl, cancel, make(chan struct{})
	go t.follow(loopCtx)
	if !t.bootstrap {
		return nil
	}
	return t.waitFor(ctx, info.bootstrapEnds())
}

// openRows opens the table's rows: in memory, or kept under the state
// directory, in which case seen starts at the positions they were stored
// with.
func (t *Table) openRows(info topicInfo) error {
	if t.dir == "" {
		t.rows = newMemRows(t.topic)
		return nil
	}
	kept, err := t.openKept(info)
	if err != nil {
		return err
	}
	t.rows = kept
	t.seen = kept.positions()
	return nil
}

// consumeFrom says where to read: from the topic's start, or, for rows
// kept with positions, from each partition's stored position.
func (t *Table) consumeFrom(info topicInfo) []kgo.Opt {
	if len(t.seen) == 0 {
		return []kgo.Opt{kgo.ConsumeTopics(t.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	}
	at := map[int32]kgo.Offset{}
	for _, p := range info.partitions {
		at[p] = kgo.NewOffset().AtStart()
		if pos, ok := t.seen[p]; ok {
			at[p] = kgo.NewOffset().At(pos)
		}
	}
	return []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.topic: at})}
}

// topicInfo is what Start learns of the topic before reading it.
type topicInfo struct {
	cluster    string
	id         string // the topic's ID, "" when the broker gives none
	partitions []int32
	starts     map[int32]int64 // log start offsets
	stable     map[int32]int64 // last stable offsets: what bootstrap waits for
	highs      map[int32]int64 // high watermarks
	// deleteRetention is how long Kafka keeps a tombstone after
	// compaction reaches it (delete.retention.ms); 0 when unknown.
	deleteRetention time.Duration
}

// bootstrapEnds are the end offsets of the non-empty partitions.
func (i topicInfo) bootstrapEnds() map[int32]int64 {
	out := map[int32]int64{}
	for p, end := range i.stable {
		if end > i.starts[p] {
			out[p] = end
		}
	}
	return out
}

// check refuses a missing topic, warns about one that is not compacted,
// and learns the topic's offsets and identity.
func (t *Table) check(ctx context.Context, adm *kadm.Client) (topicInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var info topicInfo
	if err := checkTopics(ctx, adm, t.conn); err != nil {
		return info, err
	}
	retention, err := t.checkCompacted(ctx, adm)
	if err != nil {
		return info, err
	}
	info.deleteRetention = retention
	md, err := adm.Metadata(ctx, t.topic)
	if err != nil {
		return info, t.conn.Explain(err)
	}
	info.cluster = md.Cluster
	if td := md.Topics[t.topic]; td.ID != (kadm.TopicID{}) {
		info.id = td.ID.String()
	}
	for p := range md.Topics[t.topic].Partitions {
		info.partitions = append(info.partitions, p)
	}
	slices.Sort(info.partitions)
	if info.starts, err = t.offsets(adm.ListStartOffsets(ctx, t.topic)); err != nil {
		return info, err
	}
	// Committed (last stable) offsets: a read_committed reader can't pass
	// an open transaction, so waiting for the high watermark could hang.
	if info.stable, err = t.offsets(adm.ListCommittedOffsets(ctx, t.topic)); err != nil {
		return info, err
	}
	if info.highs, err = t.offsets(adm.ListEndOffsets(ctx, t.topic)); err != nil {
		return info, err
	}
	return info, nil
}

// offsets turns a listing of the topic's offsets into a map by partition.
func (t *Table) offsets(l kadm.ListedOffsets, err error) (map[int32]int64, error) {
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		return nil, t.conn.Explain(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// checkCompacted warns when the topic's cleanup.policy is not compact:
// Kafka then deletes rows by age, and a restarted reader loses them. It
// returns the topic's delete.retention.ms, 0 when it is not given.
func (t *Table) checkCompacted(ctx context.Context, adm *kadm.Client) (time.Duration, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, t.topic)
	if err != nil {
		return 0, t.conn.Explain(err)
	}
	rc, err := rcs.On(t.topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return 0, t.conn.Explain(err)
	}
	var retention time.Duration
	for _, c := range rc.Configs {
		switch {
		case c.Value == nil:
		case c.Key == "cleanup.policy" && !strings.Contains(*c.Value, "compact"):
			t.log.Warn("kafka table: the topic is not compacted: Kafka deletes its rows by age, and a restart reads only what is left (make it with `eddy topics create TOPIC --config cleanup.policy=compact`)",
				"topic", t.topic, "cleanup.policy", *c.Value)
		case c.Key == "delete.retention.ms":
			if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
				retention = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return retention, nil
}

// waitFor returns once the reader has passed every offset in ends, or
// when ctx ends. It says every 30s how far the reading is.
func (t *Table) waitFor(ctx context.Context, ends map[int32]int64) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	lastNote := started
	for {
		left := t.behind(ends)
		if left == 0 {
			t.log.Info("kafka table read", "topic", t.topic, "rows", t.Len(), "records", t.RecordsRead(), "took", time.Since(started).Round(time.Millisecond))
			return nil
		}
		if time.Since(lastNote) >= 30*time.Second {
			lastNote = time.Now()
			t.log.Info("kafka table: still reading to its end before the run starts", "topic", t.topic, "records_left", left, "rows", t.Len())
		}
		if time.Since(started) > t.bootstrapTimeout {
			return fmt.Errorf("kafka table %q: not read to its end within bootstrap-timeout=%v (%d records left); raise it on the URI, or check the broker", t.topic, t.bootstrapTimeout, left)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka table %q: stopped while reading it (%d records left to its end): %w", t.topic, left, ctx.Err())
		case <-t.done:
			return fmt.Errorf("kafka table %q: the reader stopped before the table's end", t.topic)
		case <-tick.C:
		}
	}
}

// behind counts the records the reader has yet to pass to reach ends.
func (t *Table) behind(ends map[int32]int64) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var n int64
	for p, end := range ends {
		if seen := t.seen[p]; seen < end {
			n += end - seen
		}
	}
	return n
}

// follow reads the topic until ctx ends, applying each batch of records
// to the table under one lock.
func (t *Table) follow(ctx context.Context) {
	defer close(t.done)
	var lastErr time.Time
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || time.Since(lastErr) < 5*time.Second {
				return
			}
			lastErr = time.Now()
			t.log.Warn("kafka table: fetch failed; retrying", "topic", topic, "partition", p, "error", t.conn.Explain(err))
		})
		if err := t.apply(fs); err != nil {
			t.stop(err)
			return
		}
	}
}

// stop records why the reader stopped: every later lookup fails with it.
func (t *Table) stop(err error) {
	err = fmt.Errorf("kafka table %q: stopped reading its topic: %w", t.topic, err)
	t.log.Error("kafka table: stopped reading its topic; its lookups fail from now on", "topic", t.topic, "error", err)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = err
}

// apply puts a fetch's records into the table, in offset order per
// partition: a row's newest value wins, a tombstone deletes it. An error
// (a kept table that can't be written) stops the reader: the table would
// fall behind its topic unseen.
func (t *Table) apply(fs kgo.Fetches) error {
	var recs []*kgo.Record
	fs.EachRecord(func(r *kgo.Record) {
		if r.Key == nil && !r.Attrs.IsControl() {
			t.log.Warn("kafka table: a record without a key is no row; skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		}
		recs = append(recs, r)
	})
	if len(recs) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.rows.apply(recs); err != nil {
		return err
	}
	for _, r := range recs {
		t.seen[r.Partition] = r.Offset + 1
	}
	t.read.Add(int64(len(recs)))
	return nil
}

// isRow says whether r writes or deletes a row: control records and
// records without a key only move the position.
func isRow(r *kgo.Record) bool { return r.Key != nil && !r.Attrs.IsControl() }

// rowOf is the row a record's value holds, or the error a lookup of its
// key gives when the value is not a JSON object.
func rowOf(topic string, r *kgo.Record) (map[string]any, error) {
	row, err := parseRow(r.Value)
	if err != nil {
		return nil, badRow(topic, string(r.Key), r.Partition, r.Offset, err)
	}
	return row, nil
}

func badRow(topic, key string, partition int32, offset int64, err error) error {
	return fmt.Errorf("kafka table %q: the row of key %q (partition %d offset %d) is not a JSON object: %w", topic, key, partition, offset, err)
}

// parseRow decodes a JSON object, with whole numbers as int64 and other
// numbers as float64, as a JSON source's records are.
func parseRow(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var row map[string]any
	if err := d.Decode(&row); err != nil {
		return nil, err
	}
	if row == nil {
		return nil, fmt.Errorf("null")
	}
	if d.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	for k, v := range row {
		row[k] = numbers(v)
	}
	return row, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n
		}
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case map[string]any:
		for k, x := range v {
			v[k] = numbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = numbers(x)
		}
	}
	return v
}

// Get returns the row of key as the table holds it now.
func (t *Table) Get(key string) (map[string]any, bool, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch {
	case t.failed != nil:
		return nil, false, t.failed
	case t.rows == nil:
		return nil, false, fmt.Errorf("kafka table %q: not started", t.topic)
	}
	return t.rows.get(key)
}

// Len is the number of rows.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.rows == nil {
		return 0
	}
	return t.rows.len()
}

// Load returns a copy of the rows (for tools; lookups call Get).
func (t *Table) Load(context.Context) (map[string]map[string]any, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.rows == nil {
		return nil, fmt.Errorf("kafka table %q: not started", t.topic)
	}
	return t.rows.load()
}

// RecordsRead is how many records (control records included) the table
// has read from its topic since Start: a kept table's restart reads only
// the topic's tail.
func (t *Table) RecordsRead() int64 { return t.read.Load() }

// Transient is false: Get does not fail for a broker that is away (the
// table answers from what it read), so no error of a table passes on its
// own.
func (t *Table) Transient(error) bool { return false }

// Close stops the reader and closes the rows.
func (t *Table) Close() error {
	if t.cl == nil {
		return nil
	}
	t.cancel()
	<-t.done
	t.cl.Close()
	t.cl = nil
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rows.close()
}
