package testenv_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// TestKafkaTransaction is what exactly-once output needs from the broker: a
// transactional producer commits two batches around an aborted one, and a
// read_committed consumer sees exactly the committed values, in order.
func TestKafkaTransaction(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("eddy-smoke-"+hex.EncodeToString(id[:])),
	)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer prod.Close()

	txn := func(commit kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		for _, v := range values {
			if err := prod.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
				t.Fatalf("produce %q: %v", v, err)
			}
		}
		if err := prod.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	txn(kgo.TryCommit, "one", "two")
	txn(kgo.TryAbort, "aborted")
	txn(kgo.TryCommit, "three")

	cons, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cons.Close()

	want := []string{"one", "two", "three"}
	var got []string
	for len(got) < len(want) {
		fetches := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %q, want %q: %v", got, want, ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed consumer got %q, want %q", got, want)
	}
}

// TestKafkaSecureLogins is what the TLS and SASL tests need from the broker:
// on its SASL_SSL listener, each login produces a record and reads it back.
func TestKafkaSecureLogins(t *testing.T) {
	k := testenv.KafkaSecure(t)
	topic := k.NewTopic(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, l := range k.Logins() {
		cl, err := kgo.NewClient(append(k.Opts(t, l), kgo.DefaultProduceTopic(topic),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// The producer would retry a refused login until ctx ends.
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("%s as %s: %v", l.Mechanism, l.User, err)
		}
		if err := cl.ProduceSync(ctx, kgo.StringRecord(l.Mechanism)).FirstErr(); err != nil {
			t.Fatalf("%s as %s: produce: %v", l.Mechanism, l.User, err)
		}
		var got []string
		for !slices.Contains(got, l.Mechanism) {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s as %s: read %q, not the record produced: %v", l.Mechanism, l.User, got, ctx.Err())
			}
			if errs := fetches.Errors(); len(errs) > 0 {
				t.Fatalf("%s as %s: fetch: %v", l.Mechanism, l.User, errs[0].Err)
			}
			fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
	}
}

// TestCassandraRoundTrip writes rows into a table of a fresh keyspace and
// reads them back with the driver eddy uses.
func TestCassandraRoundTrip(t *testing.T) {
	hosts := testenv.Cassandra(t)
	ks := testenv.NewKeyspace(t, hosts)
	sess := testenv.CassandraSession(t, hosts, ks)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	if err := sess.Query(`CREATE TABLE flows (host text PRIMARY KEY, bytes bigint)`).ExecContext(ctx); err != nil {
		t.Fatalf("create table: %v", err)
	}
	want := map[string]int64{"10.0.0.1": 1500, "10.0.0.2": 42}
	for host, n := range want {
		if err := sess.Query(`INSERT INTO flows (host, bytes) VALUES (?, ?)`, host, n).ExecContext(ctx); err != nil {
			t.Fatalf("insert %s: %v", host, err)
		}
	}
	got := map[string]int64{}
	iter := sess.Query(`SELECT host, bytes FROM flows`).IterContext(ctx)
	var (
		host string
		n    int64
	)
	for iter.Scan(&host, &n) {
		got[host] = n
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("select: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("select got %v, want %v", got, want)
	}
}

// TestMySQLRoundTrip writes rows into a table of a fresh database and reads
// them back with go-sql-driver/mysql.
func TestMySQLRoundTrip(t *testing.T) {
	dsn := testenv.NewDatabase(t, testenv.MySQL(t))
	db := testenv.OpenMySQL(t, dsn)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if _, err := db.ExecContext(ctx, `CREATE TABLE flows (host VARCHAR(64) PRIMARY KEY, bytes BIGINT NOT NULL)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO flows (host, bytes) VALUES (?, ?), (?, ?)`,
		"10.0.0.1", 1500, "10.0.0.2", 42); err != nil {
		t.Fatalf("insert: %v", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT host, bytes FROM flows ORDER BY host`)
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			host string
			n    int64
		)
		if err := rows.Scan(&host, &n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, fmt.Sprintf("%s=%d", host, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	want := []string{"10.0.0.1=1500", "10.0.0.2=42"}
	if !slices.Equal(got, want) {
		t.Fatalf("select got %q, want %q", got, want)
	}
}
