// Package cassandra is the room for Apache Cassandra: the
// cassandra://HOST:PORT/KEYSPACE/TABLE sink, on the Apache gocql driver.
//
// Every row becomes a prepared INSERT, which in Cassandra is an upsert: a
// replay after a crash rewrites the same cells and the table converges to
// exactly what an uninterrupted run leaves. Rows go to workers by the hash
// of their partition key, so two writes of one key are never reordered;
// each worker sends the rows of one partition as an unlogged batch.
//
// Flush returns only when every row written so far was acknowledged at the
// sink's consistency (default LOCAL_QUORUM); timeouts, unavailable replicas
// and a node that is down are retried with backoff meanwhile, so the engine
// never checkpoints past a row Cassandra does not hold.
package cassandra
