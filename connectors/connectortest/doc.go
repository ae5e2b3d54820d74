// Package connectortest is the conformance suite every source and sink runs
// (watermill's pubsub/tests, Benthos' integration suite): a source must
// resume from any Batch.End with exactly the records after it, never
// re-reading or skipping one, because the engine's exactly-once state rests
// on that; a sink must read back what was written, in order, after Flush and
// Close.
package connectortest
