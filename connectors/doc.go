// Package connectors holds what every source and sink shares: the Source,
// Partition and Sink interfaces, the Row that flows into sinks, AppendJSON
// for the sinks that write JSON, and the registry that maps a URI scheme
// ("dir:", "file:", "gen:", "kafka://", …) to the package that implements
// it.
//
// Each system lives in a package of its own below this one and registers its
// schemes in init(); import connectors/all to get every one of them. Every
// implementation passes the conformance suite in connectors/connectortest.
//
// # Delivery
//
// Sources resume exactly: a restart that seeks to a checkpointed Batch.End
// reads exactly the records after that batch, so state rebuilt from a
// checkpoint counts every record once.
//
//	dir:PATH     exact; files moved in complete; a file renamed in under a
//	             name already done is not read again (as Spark)
//	file:PATH    exact while the file at the checkpoint is still at PATH;
//	             lines written to a rotated file after eddy moved on, or
//	             before a truncation it did not see, are lost (as tail -F)
//	gen:NAME     exact: record i is a function of (seed, i)
//	stdin        at-least-once at best: a restart skips the counted lines
//	             of whatever is piped in again
//
// Sinks here are at-least-once across a crash: stdout, stderr and file:
// write again what they wrote after the last checkpoint. Exact end-to-end
// results need an idempotent or transactional sink.
package connectors
