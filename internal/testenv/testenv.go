package testenv

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The variables that say where each server listens (services/env.sh).
const (
	KafkaEnv     = "EDDY_KAFKA_BROKERS"
	CassandraEnv = "EDDY_CASSANDRA_HOSTS"
	MySQLEnv     = "EDDY_MYSQL_DSN"
)

// Kafka returns the seed brokers in EDDY_KAFKA_BROKERS. When that is unset it
// returns the address of the broker that `just kafka-up` of this checkout
// runs, so `just services-up && go test ./...` needs no sourcing; when none
// runs either, it skips the test with a message naming the recipe.
func Kafka(t testing.TB) []string {
	t.Helper()
	return addrs(t, KafkaEnv, "kafka-up", "broker", "kafka/kafka.pid", "kafka.Kafka", localKafka)
}

// Cassandra returns the contact points in EDDY_CASSANDRA_HOSTS, else the
// node that `just cassandra-up` runs, else it skips the test (as [Kafka]).
func Cassandra(t testing.TB) []string {
	t.Helper()
	return addrs(t, CassandraEnv, "cassandra-up", "Cassandra node",
		"cassandra/cassandra.pid", "org.apache.cassandra.service.CassandraDaemon", localCassandra)
}

// MySQL returns the go-sql-driver/mysql DSN in EDDY_MYSQL_DSN, else the DSN of
// the server that `just mysql-up` runs, else it skips the test (as [Kafka]).
func MySQL(t testing.TB) string {
	t.Helper()
	dsn := strings.TrimSpace(os.Getenv(MySQLEnv))
	if dsn != "" {
		return dsn
	}
	if pid, ok := localServer("mysql/mysqld.pid", "--datadir="); ok {
		t.Logf("%s is unset; using the MariaDB server that `just mysql-up` started (pid %d)", MySQLEnv, pid)
		return localMySQL
	}
	skipUnset(t, MySQLEnv, "mysql-up", "MariaDB server")
	return ""
}

// addrs returns the comma-separated addresses in env or, when it is unset,
// local if the recipe's server runs (pidfile under .cache, marker in its
// command line); otherwise it skips the test.
func addrs(t testing.TB, env, recipe, what, pidfile, marker, local string) []string {
	t.Helper()
	var out []string
	for _, a := range strings.Split(os.Getenv(env), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) > 0 {
		return out
	}
	if pid, ok := localServer(pidfile, marker); ok {
		t.Logf("%s is unset; using the %s that `just %s` started (pid %d)", env, what, recipe, pid)
		return []string{local}
	}
	skipUnset(t, env, recipe, what)
	return nil
}

func skipUnset(t testing.TB, env, recipe, what string) {
	t.Helper()
	t.Skipf("%s is unset: run `just %s && source services/env.sh` (or `just itest`) to run this test against a real %s", env, recipe, what)
}

// uniqueName returns prefix, then as much of the test's name as fits in max
// characters, then a random suffix: a name no other test or run uses, made
// only of lower-case letters, digits and '_' so that Kafka, CQL and SQL all
// take it unquoted.
func uniqueName(t testing.TB, prefix string, max int) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	suffix := "_" + hex.EncodeToString(b[:])
	return prefix + sanitize(t.Name(), max-len(prefix)-len(suffix)) + suffix
}

// sanitize lower-cases s, turns every run of other characters than [a-z0-9]
// into one '_', and cuts it to at most n bytes.
func sanitize(s string, n int) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
			continue
		}
		if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.TrimSuffix(b.String(), "_")
	if n < 0 {
		n = 0
	}
	if len(out) > n {
		out = strings.TrimSuffix(out[:n], "_")
	}
	return out
}

// FreeAddr returns a 127.0.0.1:PORT address nothing listens on now, for a
// process the test starts to bind. The port is below the kernel's
// ephemeral range: one the kernel handed out (":0") and the test closed
// went to the local end of the next outgoing connection (a Kafka client's,
// in a test beside), and the process failed with "address already in
// use". The ports of one test binary follow each other from a random
// start, so its parallel tests never get the same one, and another
// binary's (each starting elsewhere) rarely.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	const first = 10000
	if low <= first+100 {
		t.Fatalf("the kernel's ephemeral ports start at %d: no room below them for a test's ports", low)
	}
	portOnce.Do(func() { nextPort.Store(int64(mrand.IntN(low - first))) })
	for range 1000 {
		port := first + int(nextPort.Add(1)%int64(low-first))
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatalf("no free port below %d in 1000 tries", low)
	return ""
}

var (
	portOnce sync.Once
	nextPort atomic.Int64
)

// BenchSize reads a benchmark's size from the environment variable name
// (EDDY_BENCH_ROWS and the like), def when it is unset; anything but a
// positive whole number fails t.
func BenchSize(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q is not a positive whole number", name, s)
	}
	return n
}
