package connectors

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
