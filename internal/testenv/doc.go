// Package testenv tells tests where eddy's real servers are, and gives each
// test a place of its own on them.
//
// eddy is tested against a real Apache Kafka, Apache Cassandra and MariaDB,
// not mocks. `just services-up` starts all three on this machine (see
// docs/services.md) and `source services/env.sh` exports where they listen:
//
//	EDDY_KAFKA_BROKERS   127.0.0.1:9092                     comma-separated host:port
//	EDDY_CASSANDRA_HOSTS 127.0.0.1:9042                     comma-separated host:port
//	EDDY_MYSQL_DSN       eddy:eddy@tcp(127.0.0.1:3306)/eddy go-sql-driver/mysql DSN
//
// and, for Kafka's SASL_SSL listener ([KafkaSecure]), EDDY_KAFKA_SECURE_BROKERS
// (127.0.0.1:9094), EDDY_KAFKA_CA (the PEM CA of its certificate) and the
// logins EDDY_KAFKA_SCRAM_USER/_PASSWORD (SCRAM-SHA-512) and
// EDDY_KAFKA_PLAIN_USER/_PASSWORD. KafkaSecure skips when they are unset,
// without looking for a local broker.
//
// [Kafka], [Cassandra] and [MySQL] read them. When one is unset they use the
// server that the recipe of this checkout runs (its pid, recorded under
// .cache, is alive), so `just services-up && go test ./...` needs no sourcing;
// when none runs they skip the test, naming the recipe to run: `go test ./...`
// passes on a machine with only Go. When a variable is set, a server that does
// not answer fails the test instead: a skip must never hide a broken server.
//
// [NewTopic], [NewKeyspace] and [NewDatabase] create a uniquely named topic,
// keyspace or database for one test and drop it when the test ends, so tests
// can run in parallel and against a server that other tests share.
package testenv
