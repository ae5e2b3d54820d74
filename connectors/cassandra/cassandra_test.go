package cassandra_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	_ "github.com/eddy-stream/eddy/connectors/cassandra"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// cluster is a keyspace of the test's own on the real Cassandra.
type cluster struct {
	hosts []string
	ks    string
	sess  *gocql.Session
}

func newCluster(t *testing.T) cluster {
	t.Helper()
	hosts := testenv.Cassandra(t)
	ks := testenv.NewKeyspace(t, hosts)
	return cluster{hosts: hosts, ks: ks, sess: testenv.CassandraSession(t, hosts, ks)}
}

func (c cluster) uri(table, params string) string {
	u := "cassandra://" + strings.Join(c.hosts, ",") + "/" + c.ks + "/" + table
	if params != "" {
		u += "?" + params
	}
	return u
}

func (c cluster) exec(t *testing.T, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.sess.Query(q).ExecContext(ctx); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func row(fields ...any) connectors.Row {
	var r connectors.Row
	for i := 0; i < len(fields); i += 2 {
		r.Fields = append(r.Fields, connectors.Field{Name: fields[i].(string), Value: fields[i+1]})
	}
	return r
}

func openSink(t *testing.T, uri string) connectors.Sink {
	t.Helper()
	s, err := connectors.OpenSink(uri)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCassandra(t *testing.T) {
	c := newCluster(t)
	c.exec(t, "CREATE TABLE results (dstdevice text PRIMARY KEY, count bigint, ratio double, web boolean)")
	c.exec(t, "CREATE TABLE events (day text, seq int, msg text, at timestamp, PRIMARY KEY ((day), seq))")

	t.Run("conformance", func(t *testing.T) {
		connectortest.TestSink(t,
			func(t *testing.T) connectors.Sink { return openSink(t, c.uri("results", "")) },
			func(t *testing.T) []connectors.Row {
				// A table is a set: read it back in the order the rows were written.
				got := map[string]connectors.Row{}
				iter := c.sess.Query("SELECT dstdevice, count, ratio, web FROM results").Iter()
				var dev string
				var count int64
				var ratio float64
				var web bool
				for iter.Scan(&dev, &count, &ratio, &web) {
					got[dev] = row("dstdevice", dev, "count", count, "ratio", ratio, "web", web)
				}
				if err := iter.Close(); err != nil {
					t.Fatal(err)
				}
				var out []connectors.Row
				for _, r := range connectortest.DefaultRows() {
					d, _ := r.Get("dstdevice")
					if g, ok := got[d.(string)]; ok {
						out = append(out, g)
					}
				}
				if len(got) != len(out) {
					t.Errorf("table has %d rows, %d of them written", len(got), len(out))
				}
				return out
			},
			connectortest.SinkOptions{})
	})

	t.Run("batches per partition, replay converges", func(t *testing.T) {
		ctx := context.Background()
		var rows []connectors.Row
		for i := range 300 {
			rows = append(rows, row("day", fmt.Sprintf("d%d", i%7), "seq", int64(i), "msg", fmt.Sprintf("m%d", i), "at", float64(1700000000+i)))
		}
		s := openSink(t, c.uri("events", "batch=20&concurrency=3"))
		if err := s.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// A replay of the second half, then the rest of the run with new messages.
		if err := s.Write(ctx, rows[150:]); err != nil {
			t.Fatal(err)
		}
		// Then every row again, each even one followed at once by its
		// update, so both land in one batch. "a…" sorts before "m…": a
		// batch that let Cassandra settle its equal write timestamps by
		// value would keep the old message.
		var pairs []connectors.Row
		for i := range 300 {
			pairs = append(pairs, rows[i])
			if i%2 == 0 {
				pairs = append(pairs, row("day", fmt.Sprintf("d%d", i%7), "seq", int64(i), "msg", "a-updated", "at", "2025-01-02T03:04:05Z"))
			}
		}
		if err := s.Write(ctx, pairs); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		iter := c.sess.Query("SELECT day, seq, msg FROM events").Iter()
		var day, msg string
		var seq int
		for iter.Scan(&day, &seq, &msg) {
			got = append(got, fmt.Sprintf("%s/%03d/%s", day, seq, msg))
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 300 {
			m := fmt.Sprintf("m%d", i)
			if i%2 == 0 {
				m = "a-updated"
			}
			want = append(want, fmt.Sprintf("d%d/%03d/%s", i%7, i, m))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("got %d rows, want %d; first got %v", len(got), len(want), got[:min(5, len(got))])
		}
	})

	t.Run("create", func(t *testing.T) {
		ks := c.ks + "_c"
		t.Cleanup(func() { c.exec(t, "DROP KEYSPACE IF EXISTS "+ks) })
		uri := "cassandra://" + strings.Join(c.hosts, ",") + "/" + ks + "/weather?create=true&schema=city:text,country:text,wind_speed:double&key=city&map=speed:wind_speed"
		s := openSink(t, uri)
		if err := s.Write(context.Background(), []connectors.Row{row("city", "Chicago", "country", "US", "speed", 3.1)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var city, country string
		var speed float64
		if err := c.sess.Query("SELECT city, country, wind_speed FROM "+ks+".weather").Scan(&city, &country, &speed); err != nil {
			t.Fatal(err)
		}
		if city != "Chicago" || country != "US" || speed != 3.1 {
			t.Fatalf("got %s %s %v", city, country, speed)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name        string
			uri         string
			write       []connectors.Row
			errContains string
		}{
			{"missing table", c.uri("nope", ""), nil, "table " + c.ks + ".nope does not exist"},
			{"missing keyspace", "cassandra://" + strings.Join(c.hosts, ",") + "/no_such_ks_x/t", nil, "keyspace no_such_ks_x does not exist"},
			{"unknown host", "cassandra://no-such-host.invalid:9042/" + c.ks + "/results", nil, "no-such-host.invalid"},
			{"nothing listens", "cassandra://127.0.0.1:1/" + c.ks + "/results", nil, "connect to 127.0.0.1:1"},
			{"bad path", "cassandra://" + c.hosts[0] + "/only", nil, "want cassandra://HOST:PORT"},
			{"create without schema", c.uri("nope2", "create=true"), nil, "create=true needs schema="},
			{"map to a missing column", c.uri("results", "map=a:b"), nil, `"b" is not a column`},
			{"bad consistency", c.uri("results", "consistency=most"), nil, "consistency"},
			{"field with no column", c.uri("results", ""), []connectors.Row{row("dstdevice", "x", "colour", "red")}, `field "colour" has no column in ` + c.ks + ".results"},
			{"no partition key", c.uri("results", ""), []connectors.Row{row("count", int64(1))}, "lacks the partition key (dstdevice)"},
			{"wrong type", c.uri("results", ""), []connectors.Row{row("dstdevice", "x", "count", "many")}, `field "count" for column count bigint: "many" is not a whole number`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := connectortest.SinkError(tt.uri, tt.write)
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("got error %v, want one containing %q", err, tt.errContains)
				}
			})
		}
	})
}
