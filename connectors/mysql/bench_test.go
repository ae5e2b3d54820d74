package mysql_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

func benchRow(i int) connectors.Row {
	return connectors.Row{Fields: []connectors.Field{
		{Name: "id", Value: int64(i)}, {Name: "name", Value: "device-" + strconv.Itoa(i%5000)},
		{Name: "value", Value: float64(i) * 0.25}, {Name: "flag", Value: i%3 == 0},
	}}
}

// BenchmarkSink writes the same rows through the mysql:// sink (defaults:
// 500-row upserts, 4 in flight, a Flush every 100k rows as checkpoints
// would) and through a plain-Go loop with the same driver, statement and
// batching, and prints rows/s and their ratio.
func BenchmarkSink(b *testing.B) {
	n := testenv.BenchSize(b, "EDDY_BENCH_ROWS", 1_000_000)
	srv := newServer(b)
	srv.exec(b, "CREATE TABLE eddy_bench (id BIGINT PRIMARY KEY, name VARCHAR(40), value DOUBLE, flag BOOLEAN)",
		"CREATE TABLE plain_bench (id BIGINT PRIMARY KEY, name VARCHAR(40), value DOUBLE, flag BOOLEAN)")
	ctx := context.Background()
	rows := make([]connectors.Row, n)
	for i := range rows {
		rows[i] = benchRow(i)
	}

	// Warm the server (and the JVM) up with the baseline's first rows,
	// which it then writes again.
	plainLoop(b, srv, rows[:min(n, 50000)])
	start := time.Now()
	plainLoop(b, srv, rows)
	plain := time.Since(start)

	start = time.Now()
	s, err := connectors.OpenSink(srv.prefix + "/eddy_bench?upsert=id")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1024 {
		if err := s.Write(ctx, rows[i:min(i+1024, n)]); err != nil {
			b.Fatal(err)
		}
		if (i/1024+1)%100 == 0 { // a checkpoint every ~100k rows
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
		if got := count(b, srv, table); got != n {
			b.Fatalf("%s has %d rows, want %d", table, got, n)
		}
	}
	b.ReportMetric(float64(n)/eddy.Seconds(), "eddy-rows/s")
	b.ReportMetric(float64(n)/plain.Seconds(), "plain-rows/s")
	fmt.Printf("\nMySQL (MariaDB) sink, %d rows, 500-row upserts, 4 in flight\n", n)
	fmt.Printf("  %-44s %12.0f rows/s (%v)\n", "plain Go (database/sql, same statements)", float64(n)/plain.Seconds(), plain.Round(time.Millisecond))
	fmt.Printf("  %-44s %12.0f rows/s (%v)\n", "eddy mysql:// sink", float64(n)/eddy.Seconds(), eddy.Round(time.Millisecond))
	fmt.Printf("  ratio eddy/plain: %.2f\n", plain.Seconds()/eddy.Seconds())
}

// plainLoop is the baseline: 4 goroutines, each sending 500-row
// INSERT … ON DUPLICATE KEY UPDATE statements for its share of the ids.
func plainLoop(b *testing.B, srv server, rows []connectors.Row) {
	n := len(rows)
	const batch, workers = 500, 4
	tuple := "(?,?,?,?)"
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var args []any
			var sb strings.Builder
			flush := func() error {
				if len(args) == 0 {
					return nil
				}
				sb.Reset()
				sb.WriteString("INSERT INTO plain_bench (id,name,value,flag) VALUES ")
				for k := 0; k < len(args)/4; k++ {
					if k > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString(tuple)
				}
				sb.WriteString(" ON DUPLICATE KEY UPDATE name=VALUES(name),value=VALUES(value),flag=VALUES(flag)")
				_, err := srv.db.Exec(sb.String(), args...)
				args = args[:0]
				return err
			}
			for i := w; i < n; i += workers {
				for _, f := range rows[i].Fields {
					args = append(args, f.Value)
				}
				if len(args) == 4*batch {
					if err := flush(); err != nil {
						errs <- err
						return
					}
				}
			}
			if err := flush(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func count(b *testing.B, srv server, table string) int {
	var n int
	if err := srv.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
