package kafka

import "time"

// SetChangelogTxnTimeout sets the changelog's transaction timeout for the
// changelogs opened until the returned func restores it.
func SetChangelogTxnTimeout(d time.Duration) (restore func()) {
	was := changelogTxnTimeout
	changelogTxnTimeout = d
	return func() { changelogTxnTimeout = was }
}
