// Package batcher is the machinery a database sink shares and its
// connector should not carry: a Writer routes rows by key to a fixed set of
// workers (so two writes of one key are never reordered), gathers them into
// batches with at most one batch in flight per worker (so Write blocks, and
// holds the pipeline back, while every worker is busy), retries each
// request with exponential backoff while the error classifies as
// retryable, and makes Flush return only once every row written so far is
// durable. Close gives up after a bound, since rows unwritten then were
// never covered by a checkpoint and a restart writes them again.
//
// A connector supplies what only it knows: how a batch becomes requests to
// its database (Plan), which rows share a key (Key), and which of its
// errors pass on their own (Retryable).
package batcher
