package cassandra_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// BenchmarkSink writes the same rows, each its own partition, through the
// cassandra:// sink (defaults: 8 in flight, LOCAL_QUORUM, a Flush every
// ~100k rows as checkpoints would) and through a plain-Go loop of 8
// goroutines sending the same prepared INSERT with the same driver, and
// prints rows/s and their ratio.
func BenchmarkSink(b *testing.B) {
	n := testenv.BenchSize(b, "EDDY_BENCH_ROWS", 1_000_000)
	hosts := testenv.Cassandra(b)
	ks := testenv.NewKeyspace(b, hosts)
	sess := testenv.CassandraSession(b, hosts, ks)
	for _, table := range []string{"eddy_bench", "plain_bench"} {
		if err := sess.Query("CREATE TABLE " + table + " (id bigint PRIMARY KEY, name text, value double, flag boolean)").Exec(); err != nil {
			b.Fatal(err)
		}
	}
	rows := make([]connectors.Row, n)
	for i := range rows {
		rows[i] = connectors.Row{Fields: []connectors.Field{
			{Name: "id", Value: int64(i)}, {Name: "name", Value: "device-" + strconv.Itoa(i%5000)},
			{Name: "value", Value: float64(i) * 0.25}, {Name: "flag", Value: i%3 == 0},
		}}
	}
	ctx := context.Background()

	// Warm the server (and the JVM) up with the baseline's first rows,
	// which it then writes again.
	plainLoop(b, sess, rows[:min(n, 20000)])
	start := time.Now()
	plainLoop(b, sess, rows)
	plain := time.Since(start)

	start = time.Now()
	s, err := connectors.OpenSink("cassandra://" + hosts[0] + "/" + ks + "/eddy_bench")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1024 {
		if err := s.Write(ctx, rows[i:min(i+1024, n)]); err != nil {
			b.Fatal(err)
		}
		if (i/1024+1)%100 == 0 {
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	eddy := time.Since(start)

	for _, table := range []string{"eddy_bench", "plain_bench"} {
		var got int
		if err := sess.Query("SELECT COUNT(*) FROM " + table).Scan(&got); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%s has %d rows, want %d", table, got, n)
		}
	}
	b.ReportMetric(float64(n)/eddy.Seconds(), "eddy-rows/s")
	b.ReportMetric(float64(n)/plain.Seconds(), "plain-rows/s")
	fmt.Printf("\nCassandra sink, %d rows (one partition each), prepared INSERTs, 8 in flight, LOCAL_QUORUM\n", n)
	fmt.Printf("  %-44s %12.0f rows/s (%v)\n", "plain Go (gocql, same statement)", float64(n)/plain.Seconds(), plain.Round(time.Millisecond))
	fmt.Printf("  %-44s %12.0f rows/s (%v)\n", "eddy cassandra:// sink", float64(n)/eddy.Seconds(), eddy.Round(time.Millisecond))
	fmt.Printf("  ratio eddy/plain: %.2f\n", plain.Seconds()/eddy.Seconds())
}

func plainLoop(b *testing.B, sess *gocql.Session, rows []connectors.Row) {
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rows); i += workers {
				f := rows[i].Fields
				err := sess.Query("INSERT INTO plain_bench (id, name, value, flag) VALUES (?, ?, ?, ?)", f[0].Value, f[1].Value, f[2].Value, f[3].Value).
					Idempotent(true).Consistency(gocql.LocalQuorum).Exec()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
