package testenv

import (
	"context"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// NewKeyspace creates a keyspace (SimpleStrategy, one replica) that no other
// test uses and drops it when the test ends. It returns the keyspace's name.
func NewKeyspace(t testing.TB, hosts []string) string {
	t.Helper()
	sess := CassandraSession(t, hosts, "")
	ks := uniqueName(t, "t_", 48) // CQL names are at most 48 characters

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	stmt := "CREATE KEYSPACE " + ks +
		" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
	if err := sess.Query(stmt).ExecContext(ctx); err != nil {
		t.Fatalf("testenv: create keyspace %s on %v: %v", ks, hosts, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := sess.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx); err != nil {
			t.Errorf("testenv: drop keyspace %s: %v", ks, err)
		}
	})
	return ks
}

// CassandraSession opens a session on hosts, using keyspace when it is not
// empty, and closes it when the test ends.
func CassandraSession(t testing.TB, hosts []string, keyspace string) *gocql.Session {
	t.Helper()
	cluster := gocql.NewCluster(hosts...)
	cluster.Keyspace = keyspace
	cluster.Consistency = gocql.One
	// Schema changes on a busy 2-core machine can take seconds.
	cluster.Timeout = 30 * time.Second
	cluster.ConnectTimeout = 10 * time.Second
	sess, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("testenv: cassandra session on %v (keyspace %q): %v", hosts, keyspace, err)
	}
	t.Cleanup(sess.Close)
	return sess
}
