// Package files is the room for file-system connectors: the dir:PATH
// source (a directory whose files are moved in complete, as Spark's file
// source expects), the file:PATH source (a growing log followed like
// `tail -F`, through rotation and truncation) and the file:PATH sink (JSON
// lines or CSV by extension).
//
// Positions are small JSON documents. A restart that seeks to a Batch.End
// continues with exactly the records after that batch. The sink appends
// and fsyncs at every Flush, so it is at-least-once across a crash: rows
// written after the last checkpoint are written again on restart.
package files
