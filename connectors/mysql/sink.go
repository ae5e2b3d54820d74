package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/internal/batcher"
	driver "github.com/go-sql-driver/mysql"
)

func init() {
	connectors.RegisterSink("mysql", func(t connectors.Target) (connectors.Sink, error) { return Open(t) },
		"batch", "concurrency", "extra", "retry-for", "map", "upsert", "password-file", "tls")
	connectors.RegisterLookup("mysql", func(t connectors.Target, key string) (connectors.Lookup, error) { return OpenLookup(t, key) },
		"password-file", "tls")
	connectors.DeclareReach("mysql", connectors.Reach{PathParams: []string{"password-file"}})
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
	loc     location
	db      *sql.DB
	columns map[string]string // lower-case name → the table's spelling
	mapping map[string]string // field → column, from ?map
	upsert  []string          // key columns, from ?upsert
	ignore  bool              // drop fields with no column instead of failing
	w       *batcher.Writer
}

var _ connectors.Sink = (*Sink)(nil)

// Retries implements connectors.Retrier.
func (s *Sink) Retries() int64 { return s.w.Retries() }

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
	s := &Sink{loc: loc, ignore: extra == "ignore"}
	var retryFor time.Duration
	if t.Params.Get("retry-for") != "" {
		if retryFor, err = t.DurationParam("retry-for", 0); err != nil {
			return nil, err
		}
	}
	if s.mapping, err = t.MapParam("map"); err != nil {
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
	for _, k := range connectors.SplitList(t.Params.Get("upsert")) {
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
	s.w, err = batcher.New(s.plan, s.key,
		batcher.Workers(int(conc)), batcher.BatchRows(int(batch)),
		batcher.Retryable(transient), batcher.RetryFor(retryFor),
		batcher.Explain(s.explainWrite),
		batcher.Where(loc.String()), batcher.Logger(slog.Default().With("sink", loc.String()), "mysql sink"))
	if err != nil {
		s.db.Close()
		return nil, err
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

// Write hands rows to the workers, blocking while they are all busy.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	return s.w.Write(ctx, rows)
}

// key routes r by its upsert key, else by the row's key, so two writes of
// one key never race; rows with neither go round robin.
func (s *Sink) key(r connectors.Row) ([]byte, error) {
	switch {
	case len(s.upsert) > 0:
		key := []byte{}
		for _, k := range s.upsert {
			for _, f := range r.Fields {
				if strings.EqualFold(s.column(f.Name), k) {
					key = connectors.AppendValue(key, f.Value)
					key = append(key, 0)
				}
			}
		}
		return key, nil
	case r.Key != "":
		return []byte(r.Key), nil
	}
	return nil, nil
}

func (s *Sink) column(field string) string {
	if c, ok := s.mapping[field]; ok {
		return c
	}
	return s.columns[strings.ToLower(field)]
}

// Flush writes what is buffered and returns once every row written so far
// is committed; while the server is unreachable it keeps retrying.
func (s *Sink) Flush(ctx context.Context) error {
	return s.w.Flush(ctx)
}

// Close flushes (for at most the batcher's close timeout, 30s: rows still
// unwritten then were never covered by a checkpoint, since Flush did not
// return, so a restart writes them again), stops the workers, and closes
// the connections.
func (s *Sink) Close() error {
	if s.w.Closed() {
		return nil
	}
	err := s.w.Close()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// plan writes a batch as runs of rows with the same columns, in order, one
// INSERT each.
func (s *Sink) plan(rows []connectors.Row) iter.Seq2[batcher.Request, error] {
	return func(yield func(batcher.Request, error) bool) {
		for len(rows) > 0 {
			cols, err := s.columnsOf(rows[0])
			if err != nil {
				yield(batcher.Request{}, err)
				return
			}
			n := 1
			for n < len(rows) {
				c, err := s.columnsOf(rows[n])
				if err != nil {
					yield(batcher.Request{}, err)
					return
				}
				if !slices.Equal(c, cols) {
					break
				}
				n++
			}
			if !yield(s.insert(cols, rows[:n]), nil) {
				return
			}
			rows = rows[n:]
		}
	}
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

// insert is one multi-row INSERT (an upsert with ?upsert).
func (s *Sink) insert(cols []string, rows []connectors.Row) batcher.Request {
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
	stmt := sb.String()
	return batcher.Request{Rows: len(rows), Send: func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, stmt, args...)
		return err
	}}
}

// explainWrite says what a failed INSERT means and where it failed.
func (s *Sink) explainWrite(err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == 1062 {
		return fmt.Errorf("%s: %w (the table has a unique key: name it with ?upsert=COLUMN so replays update rows instead)", s.loc, err)
	}
	return explain(s.loc, err)
}

// sqlValue converts a Row value for the driver: lists and objects as JSON.
func sqlValue(v any) any {
	switch v := v.(type) {
	case []any, map[string]any:
		return string(connectors.AppendValue(nil, v))
	}
	return v
}
