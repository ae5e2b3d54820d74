// Package mysql is the room for MySQL and MariaDB: the
// mysql://USER@HOST:PORT/DB/TABLE sink (batched multi-row INSERTs, upserts
// with ?upsert=KEY so a replay converges to the same table) and the lookup
// of the same URI scheme that backs lookup(name, key) in a pipeline.
//
// The password never travels in the URI or on the command line: it comes
// from the environment variable EDDY_MYSQL_PASSWORD or from the file
// ?password-file=PATH names, and no error or log line prints it.
//
// Delivery: Flush returns only once every row written so far is committed
// (InnoDB autocommit), retrying timeouts and lost connections with backoff
// meanwhile, so the engine never checkpoints past an unwritten row. With
// ?upsert the sink is effectively exactly-once (a replay rewrites the same
// rows); without it, it is at-least-once across a crash.
package mysql
