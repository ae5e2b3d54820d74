package connectors

import "context"

// Lagger is a Partition that knows how far its end is ahead of a position
// it returned (Kafka: the partition's end offset, the high watermark or
// the last stable offset, minus the position's offset). The engine shows
// it per partition in its status; sources without a notion of an end
// (files, generators) don't implement it.
type Lagger interface {
	// Lag returns the records between pos and the partition's end as last
	// seen, and false when the end is not known yet or pos is not one of
	// the partition's positions.
	Lag(pos Position) (int64, bool)
}

// Offsetter is a Partition whose positions are numbered (Kafka: the offset
// of the next record; generators: the number of the next record), for
// metrics. Sources whose positions are not numbers don't implement it.
type Offsetter interface {
	// Offset returns pos as a number, false when it is not one of the
	// partition's positions.
	Offset(pos Position) (int64, bool)
}

// PartitionLister is a Source whose partitions can be spread over several
// nodes (Kafka: a consumer group splits its topics' partitions). It names
// every partition the source has, whichever node reads it, so that a query
// of the live state can tell a whole answer from one that misses some.
// Sources whose partitions all go to the one node that runs them (files,
// generators) don't implement it.
type PartitionLister interface {
	// AllPartitions returns the IDs of every partition of the source.
	AllPartitions(ctx context.Context) ([]string, error)
}
