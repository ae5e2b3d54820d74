package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/internal/batcher"
)

func init() {
	connectors.RegisterSink("cassandra", func(t connectors.Target) (connectors.Sink, error) { return Open(t) },
		"batch", "concurrency", "replication", "timeout", "extra", "create", "consistency", "retry-for",
		"map", "schema", "key", "clustering")
}

// Defaults of the sink's parameters.
const (
	DefaultBatch       = 50 // rows of one partition per unlogged batch
	DefaultConcurrency = 8  // requests in flight
	DefaultConsistency = "LOCAL_QUORUM"
)

// Sink is the cassandra:// sink.
type Sink struct {
	where   string // cassandra://hosts/ks/table, for errors and logs
	ks      string
	table   string
	sess    *gocql.Session
	columns map[string]column
	pk, ck  []string // partition key and clustering columns, in order
	mapping map[string]string
	ignore  bool
	batch   int
	cons    gocql.Consistency
	w       *batcher.Writer

	stmtMu sync.Mutex
	stmts  map[string]string // column list → INSERT
}

var _ connectors.Sink = (*Sink)(nil)

// Retries implements connectors.Retrier.
func (s *Sink) Retries() int64 { return s.w.Retries() }

// Open connects to the cluster t names and checks (or, with create=true,
// creates) the table.
func Open(t connectors.Target) (*Sink, error) {
	hosts := connectors.SplitList(t.Host)
	ks, table, _ := strings.Cut(t.Path, "/")
	if len(hosts) == 0 || ks == "" || table == "" || strings.Contains(table, "/") {
		return nil, fmt.Errorf("cassandra: want cassandra://HOST:PORT[,HOST:PORT]/KEYSPACE/TABLE, got %q", t.URI)
	}
	s := &Sink{where: "cassandra://" + t.Host + "/" + ks + "/" + table, ks: ks, table: table, stmts: map[string]string{}}
	batch, err := t.IntParam("batch", DefaultBatch, 1)
	if err != nil {
		return nil, err
	}
	conc, err := t.IntParam("concurrency", DefaultConcurrency, 1)
	if err != nil {
		return nil, err
	}
	if _, err := t.IntParam("replication", 1, 1); err != nil {
		return nil, err
	}
	timeout, err := t.DurationParam("timeout", 10*time.Second)
	if err != nil {
		return nil, err
	}
	extra, err := t.Choice("extra", "error", "error", "ignore")
	if err != nil {
		return nil, err
	}
	create, err := t.Choice("create", "false", "true", "false")
	if err != nil {
		return nil, err
	}
	if s.cons, err = gocql.ParseConsistencyWrapper(strings.ToUpper(firstOf(t.Params.Get("consistency"), DefaultConsistency))); err != nil {
		return nil, fmt.Errorf("parameter consistency: %w", err)
	}
	var retryFor time.Duration
	if t.Params.Get("retry-for") != "" {
		if retryFor, err = t.DurationParam("retry-for", 0); err != nil {
			return nil, err
		}
	}
	s.batch, s.ignore = int(batch), extra == "ignore"
	if s.mapping, err = t.MapParam("map"); err != nil {
		return nil, err
	}

	cluster := gocql.NewCluster(hosts...)
	cluster.Consistency = s.cons
	cluster.Timeout = timeout
	cluster.ConnectTimeout = 5 * time.Second
	cluster.ReconnectInterval = time.Second
	cluster.Logger = slogLogger{}
	if s.sess, err = cluster.CreateSession(); err != nil {
		return nil, s.explain(fmt.Errorf("connect to %s: %w", strings.Join(hosts, ","), err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.loadTable(ctx, create == "true", t); err != nil {
		s.sess.Close()
		return nil, err
	}
	s.w, err = batcher.New(s.plan, s.key,
		batcher.Workers(int(conc)), batcher.BatchRows(s.batch),
		batcher.Retryable(transient), batcher.RetryFor(retryFor),
		batcher.Explain(s.explain), batcher.Where(s.where),
		batcher.Logger(slog.Default().With("sink", s.where), "cassandra sink"))
	if err != nil {
		s.sess.Close()
		return nil, err
	}
	return s, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// loadTable reads the table's columns, creating keyspace and table first
// when asked to.
func (s *Sink) loadTable(ctx context.Context, create bool, t connectors.Target) error {
	cols, err := readColumns(ctx, s.sess, s.ks, s.table)
	if err != nil {
		return s.explain(fmt.Errorf("read the schema of %s.%s: %w", s.ks, s.table, err))
	}
	if len(cols) == 0 && create {
		rf, _ := t.IntParam("replication", 1, 1)
		stmts, err := createStatements(s.ks, s.table, t.Params.Get("schema"), t.Params.Get("key"), t.Params.Get("clustering"), rf)
		if err != nil {
			return fmt.Errorf("%s: %w", s.where, err)
		}
		for _, q := range stmts {
			if err := s.sess.Query(q).ExecContext(ctx); err != nil {
				return s.explain(fmt.Errorf("%s: %w", q, err))
			}
		}
		if cols, err = readColumns(ctx, s.sess, s.ks, s.table); err != nil {
			return s.explain(err)
		}
	}
	if len(cols) == 0 {
		ok, err := keyspaceExists(ctx, s.sess, s.ks)
		if err != nil {
			return s.explain(err)
		}
		if !ok {
			return fmt.Errorf("%s: keyspace %s does not exist (create it, or open with ?create=true&schema=COLUMN:TYPE,…&key=COLUMN)", s.where, s.ks)
		}
		return fmt.Errorf("%s: table %s.%s does not exist (create it, or open with ?create=true&schema=COLUMN:TYPE,…&key=COLUMN)", s.where, s.ks, s.table)
	}
	s.columns, s.pk, s.ck = cols, keyColumns(cols, "partition_key"), keyColumns(cols, "clustering")
	for f, c := range s.mapping {
		if _, ok := cols[c]; !ok {
			return fmt.Errorf("%s: map %s:%s: %q is not a column of %s.%s (columns: %s)", s.where, f, c, c, s.ks, s.table, s.columnList())
		}
	}
	return nil
}

func (s *Sink) columnList() string {
	names := make([]string, 0, len(s.columns))
	for n := range s.columns {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// column returns the column field goes to, "" when none.
func (s *Sink) column(field string) string {
	if c, ok := s.mapping[field]; ok {
		return c
	}
	if _, ok := s.columns[field]; ok {
		return field
	}
	if _, ok := s.columns[strings.ToLower(field)]; ok {
		return strings.ToLower(field)
	}
	return ""
}

// Write checks rows against the table and hands them to the workers,
// blocking while every worker is busy.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	return s.w.Write(ctx, rows)
}

// key routes r by its partition key, so two writes of one partition are
// never reordered; it rejects a row the table can't take.
func (s *Sink) key(r connectors.Row) ([]byte, error) {
	pk, err := s.partitionOf(r)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, pk...), nil // not nil, even for an empty key
}

// partitionOf renders r's partition key, failing when r lacks part of it
// or has a field with no column.
func (s *Sink) partitionOf(r connectors.Row) (string, error) {
	vals := make([]string, len(s.pk))
	found := 0
	for _, f := range r.Fields {
		c := s.column(f.Name)
		if c == "" {
			if s.ignore {
				continue
			}
			return "", fmt.Errorf("%s: field %q has no column in %s.%s (columns: %s; map it with ?map=%s:COLUMN or drop extra fields with ?extra=ignore)",
				s.where, f.Name, s.ks, s.table, s.columnList(), f.Name)
		}
		if i := slices.Index(s.pk, c); i >= 0 {
			if f.Value == nil {
				return "", fmt.Errorf("%s: partition key column %q is null in row %s", s.where, c, connectors.AppendJSON(nil, r))
			}
			vals[i] = connectors.LookupKey(f.Value)
			found++
		}
	}
	if found < len(s.pk) {
		return "", fmt.Errorf("%s: row %s lacks the partition key (%s)", s.where, connectors.AppendJSON(nil, r), strings.Join(s.pk, ", "))
	}
	return strings.Join(vals, "\x1f"), nil
}

// Flush sends what is buffered and returns once Cassandra acknowledged
// every row written so far; while it can't, it keeps retrying.
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
	s.sess.Close()
	return err
}

// entry is one bound INSERT.
type entry struct {
	stmt string
	args []any
}

// plan groups rows by partition, in order, and sends each partition's rows
// as unlogged batches of up to Batch rows (one row: a plain query).
//
// The statements of a batch share one write timestamp, and Cassandra
// settles cells written at the same timestamp by the larger value, not the
// later statement. So rows with the same primary key are merged first,
// later fields over earlier ones, which is what the upserts one after the
// other would leave.
func (s *Sink) plan(rows []connectors.Row) iter.Seq2[batcher.Request, error] {
	return func(yield func(batcher.Request, error) bool) {
		groups := map[string][]connectors.Row{}
		at := map[string]int{} // full primary key → index in its group
		var order []string
		for _, r := range rows {
			pk, _ := s.partitionOf(r)
			key := pk + "\x1e" + s.clusteringOf(r)
			if i, ok := at[key]; ok {
				groups[pk][i] = merge(groups[pk][i], r)
				continue
			}
			if _, ok := groups[pk]; !ok {
				order = append(order, pk)
			}
			at[key] = len(groups[pk])
			groups[pk] = append(groups[pk], r)
		}
		for _, pk := range order {
			es := make([]entry, 0, len(groups[pk]))
			for _, r := range groups[pk] {
				e, err := s.bind(r)
				if err != nil {
					yield(batcher.Request{}, err)
					return
				}
				es = append(es, e)
			}
			for len(es) > 0 {
				n := min(len(es), s.batch)
				if !yield(s.exec(es[:n]), nil) {
					return
				}
				es = es[n:]
			}
		}
	}
}

// clusteringOf renders r's clustering key ("" for a table without one).
func (s *Sink) clusteringOf(r connectors.Row) string {
	if len(s.ck) == 0 {
		return ""
	}
	vals := make([]string, len(s.ck))
	for _, f := range r.Fields {
		if i := slices.Index(s.ck, s.column(f.Name)); i >= 0 {
			vals[i] = string(connectors.AppendValue(nil, f.Value))
		}
	}
	return strings.Join(vals, "\x1f")
}

// merge returns a with b's fields written over it.
func merge(a, b connectors.Row) connectors.Row {
	out := connectors.Row{Key: b.Key, Fields: append([]connectors.Field(nil), a.Fields...)}
	for _, f := range b.Fields {
		i := slices.IndexFunc(out.Fields, func(g connectors.Field) bool { return g.Name == f.Name })
		if i >= 0 {
			out.Fields[i] = f
		} else {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

// bind makes r's INSERT with its values converted to the columns' types.
func (s *Sink) bind(r connectors.Row) (entry, error) {
	cols := make([]string, 0, len(r.Fields))
	args := make([]any, 0, len(r.Fields))
	for _, f := range r.Fields {
		c := s.column(f.Name)
		if c == "" {
			continue
		}
		v, err := toCQL(s.columns[c].typ, f.Value)
		if err != nil {
			return entry{}, fmt.Errorf("%s: field %q for column %s %s: %w", s.where, f.Name, c, s.columns[c].typ, err)
		}
		cols = append(cols, c)
		args = append(args, v)
	}
	key := strings.Join(cols, ",")
	s.stmtMu.Lock()
	stmt, ok := s.stmts[key]
	if !ok {
		stmt = fmt.Sprintf("INSERT INTO %s.%s (%s) VALUES (%s)", ident(s.ks), ident(s.table), joinIdents(cols), strings.TrimSuffix(strings.Repeat("?,", len(cols)), ","))
		s.stmts[key] = stmt
	}
	s.stmtMu.Unlock()
	return entry{stmt: stmt, args: args}, nil
}

// exec sends entries of one partition: one query, or an unlogged batch.
func (s *Sink) exec(es []entry) batcher.Request {
	return batcher.Request{Rows: len(es), Send: func(ctx context.Context) error {
		if len(es) == 1 {
			return s.sess.Query(es[0].stmt, es[0].args...).Idempotent(true).Consistency(s.cons).ExecContext(ctx)
		}
		b := s.sess.Batch(gocql.UnloggedBatch).Consistency(s.cons)
		for _, e := range es {
			b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: e.stmt, Args: e.args, Idempotent: true})
		}
		return b.ExecContext(ctx)
	}}
}

// transient says whether err may pass on its own: timeouts, unavailable or
// overloaded replicas, a node that is down or restarting.
func transient(err error) bool {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeTruncate:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, gocql.ErrNoConnections) || errors.Is(err, gocql.ErrTimeoutNoResponse) ||
		errors.Is(err, gocql.ErrConnectionClosed) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") ||
		// A connection dropped mid-frame: gocql reports it without wrapping.
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.HasSuffix(err.Error(), "err: EOF")
}

// explain prefixes err with the sink and says what a server error means.
func (s *Sink) explain(err error) error {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeCredentials, gocql.ErrCodeUnauthorized:
			return fmt.Errorf("%s: the server refused the credentials or the permission: %w", s.where, err)
		case gocql.ErrCodeInvalid:
			return fmt.Errorf("%s: invalid request (a missing table or column?): %w", s.where, err)
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%s: unknown host %q: %w", s.where, dns.Name, err)
	}
	if msg := err.Error(); strings.Contains(msg, "no such host") {
		return fmt.Errorf("%s: unknown host: %w", s.where, err)
	}
	return fmt.Errorf("%s: %w", s.where, err)
}

// slogLogger sends the driver's messages to slog at debug: the sink logs
// its retries itself, and a node that is down would otherwise fill stderr.
type slogLogger struct{}

func (slogLogger) log(msg string, fields []gocql.LogField) {
	args := make([]any, 0, 2*len(fields))
	for _, f := range fields {
		args = append(args, f.Name, f.Value.String())
	}
	slog.Debug("gocql: "+msg, args...)
}

func (l slogLogger) Error(msg string, fields ...gocql.LogField)   { l.log(msg, fields) }
func (l slogLogger) Warning(msg string, fields ...gocql.LogField) { l.log(msg, fields) }
func (l slogLogger) Info(msg string, fields ...gocql.LogField)    { l.log(msg, fields) }
func (l slogLogger) Debug(msg string, fields ...gocql.LogField)   { l.log(msg, fields) }
