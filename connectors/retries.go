package connectors

// Retrier is a Sink that retries failed writes itself (MySQL, Cassandra),
// for metrics.
type Retrier interface {
	// Retries is how many times a write was tried again after a transient
	// failure since the sink was opened.
	Retries() int64
}
