// Package kafka is eddy's room for Apache Kafka: the kafka:// source, which
// joins a consumer group and hands each assigned topic-partition to the
// engine as a connectors.Partition, and the kafka:// sink, which produces
// rows as keyed JSON records, idempotently, or in transactions aligned with
// checkpoints when exactly-once is asked for. It uses franz-go.
//
//	kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=NAME&start=earliest
//	kafka://HOST:PORT/TOPIC?exactly-once=true
//
// See docs/kafka.md for the parameters, the commit protocol and the
// delivery guarantees.
package kafka
