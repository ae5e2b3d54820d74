package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	driver "github.com/go-sql-driver/mysql"
)

func init() {
	connectors.RegisterSink("mysql", func(t connectors.Target) (connectors.Sink, error) { return Open(t) })
	connectors.RegisterLookup("mysql", func(t connectors.Target, key string) (connectors.Lookup, error) { return OpenLookup(t, key) })
}

// Defaults of the sink's parameters.
const (
	DefaultBatch       = 500 // rows per INSERT statement
	DefaultConcurrency = 4   // statements in flight
)

// Sink is the mysql:// sink. Rows go to one of Concurrency workers by the
// hash of their upsert key (else the row's key), so rows of one key are
// written in order, and each worker sends multi-row INSERTs of up to Batch
// rows. Write blocks while every worker is busy: that is the backpressure
// that holds the pipeline back during an outage.
type Sink struct {
	loc      location
	db       *sql.DB
	columns  map[string]string // lower-case name → the table's spelling
	mapping  map[string]string // field → column, from ?map
	upsert   []string          // key columns, from ?upsert
	ignore   bool              // drop fields with no column instead of failing
	batch    int
	retryFor time.Duration
	log      *slog.Logger

	workers []*worker
	pending sync.WaitGroup // batches handed to workers and not yet written
	ctx     context.Context
	cancel  context.CancelFunc
	errMu   sync.Mutex
	err     error
	closed  bool
	next    int // round robin for rows with no key
}

type worker struct {
	rows []connectors.Row
	ch   chan []connectors.Row
}

var _ connectors.Sink = (*Sink)(nil)

// Open opens the sink t names and checks that its table exists.
func Open(t connectors.Target) (*Sink, error) {
	loc, err := parseLocation(t)
	if err != nil {
		return nil, err
	}
	batch, err := t.IntParam("batch", DefaultBatch, 1)
	if err != nil {
		return nil, err
	}
	conc, err := t.IntParam("concurrency", DefaultConcurrency, 1)
	if err != nil {
		return nil, err
	}
	extra, err := t.Choice("extra", "error", "error", "ignore")
	if err != nil {
		return nil, err
	}
	s := &Sink{loc: loc, batch: int(batch), ignore: extra == "ignore", log: slog.Default().With("sink", loc.String())}
	if t.Params.Get("retry-for") != "" {
		if s.retryFor, err = t.DurationParam("retry-for", 0); err != nil {
			return nil, err
		}
	}
	if s.mapping, err = parseMap(t.Params.Get("map")); err != nil {
		return nil, err
	}
	if s.db, err = openDB(loc, t, int(conc)+1); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.columns, err = tableColumns(ctx, s.db, loc); err != nil {
		s.db.Close()
		return nil, err
	}
	for _, k := range splitList(t.Params.Get("upsert")) {
		c, ok := s.columns[strings.ToLower(k)]
		if !ok {
			s.db.Close()
			return nil, fmt.Errorf("%s: upsert key %q is not a column of %s.%s (columns: %s)", loc, k, loc.db, loc.table, s.columnList())
		}
		s.upsert = append(s.upsert, c)
	}
	for f, c := range s.mapping {
		col, ok := s.columns[strings.ToLower(c)]
		if !ok {
			s.db.Close()
			return nil, fmt.Errorf("%s: map %s:%s: %q is not a column of %s.%s (columns: %s)", loc, f, c, c, loc.db, loc.table, s.columnList())
		}
		s.mapping[f] = col
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range conc {
		w := &worker{ch: make(chan []connectors.Row, 1)}
		s.workers = append(s.workers, w)
		go s.run(w)
	}
	return s, nil
}

// tableColumns reads the table's columns, failing clearly when the server
// can't be reached, refuses the user, or has no such table.
func tableColumns(ctx context.Context, db *sql.DB, loc location) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", loc.db, loc.table)
	if err != nil {
		return nil, explain(loc, err)
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, explain(loc, err)
		}
		cols[strings.ToLower(name)] = name
	}
	if err := rows.Err(); err != nil {
		return nil, explain(loc, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: table %s.%s does not exist (create it first; the sink does not guess a schema)", loc, loc.db, loc.table)
	}
	return cols, nil
}

func (s *Sink) columnList() string {
	names := make([]string, 0, len(s.columns))
	for _, c := range s.columns {
		names = append(names, c)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// parseMap reads ?map=field:column,field:column.
func parseMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range splitList(v) {
		f, c, ok := strings.Cut(pair, ":")
		if !ok || f == "" || c == "" {
			return nil, fmt.Errorf("parameter map: %q is not field:column", pair)
		}
		m[f] = c
	}
	return m, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Write hands rows to the workers, blocking while they are all busy.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	if err := s.failed(); err != nil {
		return err
	}
	if s.closed {
		return fmt.Errorf("%s: write after close", s.loc)
	}
	for _, r := range rows {
		w := s.workers[s.route(r)]
		w.rows = append(w.rows, r)
		if len(w.rows) >= s.batch {
			if err := s.send(ctx, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// route picks the worker for r: by upsert key, else by the row's key, so
// two writes of one key never race.
func (s *Sink) route(r connectors.Row) int {
	if len(s.workers) == 1 {
		return 0
	}
	h := fnv.New32a()
	switch {
	case len(s.upsert) > 0:
		for _, k := range s.upsert {
			for _, f := range r.Fields {
				if strings.EqualFold(s.column(f.Name), k) {
					h.Write(connectors.AppendValue(nil, f.Value))
					h.Write([]byte{0})
				}
			}
		}
	case r.Key != "":
		h.Write([]byte(r.Key))
	default:
		s.next++
		return s.next % len(s.workers)
	}
	return int(h.Sum32() % uint32(len(s.workers)))
}

func (s *Sink) column(field string) string {
	if c, ok := s.mapping[field]; ok {
		return c
	}
	return s.columns[strings.ToLower(field)]
}

func (s *Sink) send(ctx context.Context, w *worker) error {
	if len(w.rows) == 0 {
		return nil
	}
	s.pending.Add(1)
	select {
	case w.ch <- w.rows:
		w.rows = nil
		return nil
	case <-ctx.Done():
		s.pending.Done()
		return ctx.Err()
	}
}

// Flush writes what is buffered and returns once every row written so far
// is committed; while the server is unreachable it keeps retrying.
func (s *Sink) Flush(ctx context.Context) error {
	if s.closed {
		return fmt.Errorf("%s: flush after close", s.loc)
	}
	for _, w := range s.workers {
		if err := s.send(ctx, w); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go func() { s.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.failed()
}

// CloseTimeout bounds how long Close waits for buffered rows to be
// written. Rows still unwritten then were never covered by a checkpoint
// (Flush did not return), so a restart writes them again.
const CloseTimeout = 30 * time.Second

// Close flushes (for at most CloseTimeout), stops the workers, and closes
// the connections.
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	err := s.Flush(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: close: rows still unwritten after %v; a restart from the last checkpoint writes them again", s.loc, CloseTimeout)
	}
	s.closed = true
	s.cancel() // ends the retries of workers still at it
	for _, w := range s.workers {
		close(w.ch)
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Sink) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Sink) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *Sink) run(w *worker) {
	for rows := range w.ch {
		if s.failed() == nil {
			if err := s.write(rows); err != nil {
				s.fail(err)
			}
		}
		s.pending.Done()
	}
}

// write writes rows as runs of rows with the same columns, in order.
func (s *Sink) write(rows []connectors.Row) error {
	for len(rows) > 0 {
		cols, err := s.columnsOf(rows[0])
		if err != nil {
			return err
		}
		n := 1
		for n < len(rows) {
			c, err := s.columnsOf(rows[n])
			if err != nil {
				return err
			}
			if !slices.Equal(c, cols) {
				break
			}
			n++
		}
		if err := s.insert(cols, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// columnsOf lists the columns row r fills, in field order.
func (s *Sink) columnsOf(r connectors.Row) ([]string, error) {
	cols := make([]string, 0, len(r.Fields))
	for _, f := range r.Fields {
		c := s.column(f.Name)
		if c == "" {
			if s.ignore {
				continue
			}
			return nil, fmt.Errorf("%s: field %q has no column in %s.%s (columns: %s; map it with ?map=%s:COLUMN or drop extra fields with ?extra=ignore)",
				s.loc, f.Name, s.loc.db, s.loc.table, s.columnList(), f.Name)
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// insert sends one multi-row INSERT, retrying transient failures.
func (s *Sink) insert(cols []string, rows []connectors.Row) error {
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(quote(s.loc.table))
	sb.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(quote(c))
	}
	sb.WriteString(") VALUES ")
	tuple := "(" + strings.Repeat("?,", len(cols)-1) + "?)"
	args := make([]any, 0, len(cols)*len(rows))
	for i, r := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(tuple)
		for _, f := range r.Fields {
			if s.column(f.Name) != "" {
				args = append(args, sqlValue(f.Value))
			}
		}
	}
	if len(s.upsert) > 0 {
		sb.WriteString(" ON DUPLICATE KEY UPDATE ")
		n := 0
		for _, c := range cols {
			if slices.Contains(s.upsert, c) {
				continue
			}
			if n > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(quote(c) + "=VALUES(" + quote(c) + ")")
			n++
		}
		if n == 0 {
			sb.WriteString(quote(cols[0]) + "=" + quote(cols[0]))
		}
	}
	return s.retry(len(rows), func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, sb.String(), args...)
		return err
	})
}

// retry runs op until it succeeds, fails for good, or ?retry-for passes.
func (s *Sink) retry(n int, op func(ctx context.Context) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := op(s.ctx)
		if err == nil {
			if attempt > 1 {
				s.log.Info("mysql sink: write succeeded after retries", "rows", n, "attempts", attempt, "outage", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if !transient(err) {
			var me *driver.MySQLError
			if errors.As(err, &me) && me.Number == 1062 {
				return fmt.Errorf("%s: %w (the table has a unique key: name it with ?upsert=COLUMN so replays update rows instead)", s.loc, err)
			}
			return explain(s.loc, err)
		}
		if s.retryFor > 0 && time.Since(start) > s.retryFor {
			return fmt.Errorf("%s: gave up after %v of retries (retry-for=%v): %w", s.loc, time.Since(start).Round(time.Second), s.retryFor, explain(s.loc, err))
		}
		wait := backoff(attempt)
		s.log.Warn("mysql sink: write failed, retrying; the checkpoint waits until it succeeds", "rows", n, "attempt", attempt, "retry_in", wait, "error", explain(s.loc, err))
		if err := sleep(s.ctx, wait); err != nil {
			return fmt.Errorf("%s: closed while retrying: %w", s.loc, err)
		}
	}
}

// sqlValue converts a Row value for the driver: lists and objects as JSON.
func sqlValue(v any) any {
	switch v := v.(type) {
	case []any, map[string]any:
		return string(connectors.AppendValue(nil, v))
	}
	return v
}
