package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterLookup("kafka", func(t connectors.Target, key string) (connectors.Lookup, error) { return OpenTable(t, key) },
		append(connParams, "bootstrap", "bootstrap-timeout")...)
	connectors.DeclareTable("kafka")
}

// Table is a lookup table read from a compacted Kafka topic, like Kafka
// Streams' GlobalKTable: every process reads every partition of the topic
// into memory, from the start, and follows it as it grows. A record's key
// is the row's key, its value (a JSON object) the row, and a null value
// (a tombstone) deletes the row.
//
// Which rows a lookup sees: the table as read at the moment of the lookup.
// With bootstrap (the default) Start returns only once every record the
// topic held when it was called has been read, so the run's first records
// see all of them; later updates apply to the records looked up after the
// reader took them in. A restart reads the topic again from its start: the
// table is not kept in the node's state.
type Table struct {
	conn      Conn
	topic     string
	bootstrap bool
	// bootstrapTimeout bounds the wait for the table's end at start.
	bootstrapTimeout time.Duration
	log              *slog.Logger

	mu   sync.RWMutex
	rows map[string]map[string]any
	bad  map[string]error // keys whose newest value is not a JSON object
	seen map[int32]int64  // per partition, the offset after the last record read

	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

var _ connectors.Table = (*Table)(nil)

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
	return &Table{conn: c, topic: c.Topics[0], bootstrap: bootstrap == "true", bootstrapTimeout: timeout, log: slog.Default(),
		rows: map[string]map[string]any{}, bad: map[string]error{}, seen: map[int32]int64{}}, nil
}

// Start checks the topic, starts reading it and, with bootstrap, waits
// until the table holds every record the topic held at the call. A
// missing topic is refused, naming it; a topic that is not compacted is
// read, with a warning.
func (t *Table) Start(ctx context.Context) error {
	cl, err := t.conn.NewClient(
		kgo.ConsumeTopics(t.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) take offsets: keeping
		// them lets the reader see that it reached the end offset.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return err
	}
	ends, err := t.check(ctx, kadm.NewClient(cl))
	if err != nil {
		cl.Close()
		return fmt.Errorf("kafka table %q: %w", t.topic, err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	t.cl, t.cancel, t.done = cl, cancel, make(chan struct{})
	go t.follow(loopCtx)
	if !t.bootstrap {
		return nil
	}
	return t.waitFor(ctx, ends)
}

// check refuses a missing topic, warns about one that is not compacted,
// and returns the end offset of each non-empty partition.
func (t *Table) check(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := checkTopics(ctx, adm, t.conn); err != nil {
		return nil, err
	}
	if err := t.checkCompacted(ctx, adm); err != nil {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, t.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, t.conn.Explain(err)
	}
	// Committed (last stable) offsets: a read_committed reader can't pass
	// an open transaction, so waiting for the high watermark could hang.
	ends, err := adm.ListCommittedOffsets(ctx, t.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, t.conn.Explain(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); !ok || o.Offset > s.Offset {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

// checkCompacted warns when the topic's cleanup.policy is not compact:
// Kafka then deletes rows by age, and a restarted reader loses them.
func (t *Table) checkCompacted(ctx context.Context, adm *kadm.Client) error {
	rcs, err := adm.DescribeTopicConfigs(ctx, t.topic)
	if err != nil {
		return t.conn.Explain(err)
	}
	rc, err := rcs.On(t.topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return t.conn.Explain(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil && !strings.Contains(*c.Value, "compact") {
			t.log.Warn("kafka table: the topic is not compacted: Kafka deletes its rows by age, and a restart reads only what is left (make it with `eddy topics create TOPIC --config cleanup.policy=compact`)",
				"topic", t.topic, "cleanup.policy", *c.Value)
		}
	}
	return nil
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
			t.log.Info("kafka table read", "topic", t.topic, "rows", t.Len(), "took", time.Since(started).Round(time.Millisecond))
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
		t.apply(fs)
	}
}

// apply puts a fetch's records into the table, in offset order per
// partition: a row's newest value wins, a tombstone deletes it.
func (t *Table) apply(fs kgo.Fetches) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		t.seen[r.Partition] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		if r.Key == nil {
			t.log.Warn("kafka table: a record without a key is no row; skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
			return
		}
		key := string(r.Key)
		delete(t.bad, key)
		if r.Value == nil {
			delete(t.rows, key)
			return
		}
		row, err := parseRow(r.Value)
		if err != nil {
			delete(t.rows, key)
			t.bad[key] = fmt.Errorf("kafka table %q: the row of key %q (partition %d offset %d) is not a JSON object: %w", t.topic, key, r.Partition, r.Offset, err)
			return
		}
		t.rows[key] = row
	})
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
	if err := t.bad[key]; err != nil {
		return nil, false, err
	}
	row, ok := t.rows[key]
	return row, ok, nil
}

// Len is the number of rows.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// Load returns a copy of the rows (for tools; lookups call Get).
func (t *Table) Load(context.Context) (map[string]map[string]any, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return maps.Clone(t.rows), nil
}

// Transient is false: Get does not fail for a broker that is away (the
// table answers from what it read), so no error of a table passes on its
// own.
func (t *Table) Transient(error) bool { return false }

// Close stops the reader.
func (t *Table) Close() error {
	if t.cl == nil {
		return nil
	}
	t.cancel()
	<-t.done
	t.cl.Close()
	return nil
}
