// Package connectors holds what every source and sink shares: the Source,
// Partition and Sink interfaces, the Row that flows into sinks, and the
// registry that maps a URI scheme ("dir:", "file:", "gen:", "kafka://", …)
// to the package that implements it.
//
// Each system lives in a package of its own below this one and registers its
// schemes in init(); import connectors/all to get every one of them.
package connectors
