package kafka

import "time"

// SetChangelogTxnTimeout sets the changelog's transaction timeout for the
// changelogs opened until the returned func restores it.
func SetChangelogTxnTimeout(d time.Duration) (restore func()) {
	was := changelogTxnTimeout
	changelogTxnTimeout = d
	return func() { changelogTxnTimeout = was }
}

// HoldChangelogCommits calls hold in every changelog's Commit between its
// marker and its EndTransaction, until the returned func undoes it.
func HoldChangelogCommits(hold func()) (restore func()) {
	f := func(string) { hold() }
	beforeEndTxn.Store(&f)
	return func() { beforeEndTxn.Store(nil) }
}

// FetcherOf is the index of the fetcher that fetches p's records (the
// group's client is 0).
func FetcherOf(p interface{ ID() string }) int {
	part := p.(*partition)
	s := part.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.fetchers {
		if f == part.f {
			return i
		}
	}
	return -1
}

// FetchRestarts counts the restarts of src's fetches for a resumed
// partition (fetcher.resume).
func FetchRestarts(src any) int64 { return src.(*Source).fetchRestarts.Load() }

// StartListings counts src's listings of where partitions start.
func StartListings(src any) int64 { return src.(*Source).startListings.Load() }
