package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// The variables that say where each server listens (services/env.sh).
const (
	KafkaEnv     = "EDDY_KAFKA_BROKERS"
	CassandraEnv = "EDDY_CASSANDRA_HOSTS"
	MySQLEnv     = "EDDY_MYSQL_DSN"
)

// Kafka returns the seed brokers in EDDY_KAFKA_BROKERS, or skips the test
// when it is unset.
func Kafka(t testing.TB) []string {
	t.Helper()
	return addrs(t, KafkaEnv, "kafka-up", "broker")
}

// Cassandra returns the contact points in EDDY_CASSANDRA_HOSTS, or skips the
// test when it is unset.
func Cassandra(t testing.TB) []string {
	t.Helper()
	return addrs(t, CassandraEnv, "cassandra-up", "Cassandra node")
}

// MySQL returns the go-sql-driver/mysql DSN in EDDY_MYSQL_DSN, or skips the
// test when it is unset.
func MySQL(t testing.TB) string {
	t.Helper()
	dsn := strings.TrimSpace(os.Getenv(MySQLEnv))
	if dsn == "" {
		skipUnset(t, MySQLEnv, "mysql-up", "MariaDB server")
	}
	return dsn
}

func addrs(t testing.TB, env, recipe, what string) []string {
	t.Helper()
	var out []string
	for _, a := range strings.Split(os.Getenv(env), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		skipUnset(t, env, recipe, what)
	}
	return out
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
