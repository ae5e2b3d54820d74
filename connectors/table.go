package connectors

import "context"

// Table is a Lookup that keeps itself current: a compacted Kafka topic
// followed as it grows, like Kafka Streams' GlobalKTable. The caller does
// not cache or refresh it (Load is a snapshot, for tools): Get answers from
// the rows as they are at the moment of the call.
type Table interface {
	Lookup
	// Start reads the table. With bootstrap it returns once every row
	// written before the call has been read (the end offsets as of the
	// call), so the first records processed after it see them; an error
	// names the table (a missing topic, say). Reading goes on in the
	// background until Close.
	Start(ctx context.Context) error
	// Get returns the row whose key is key, as LookupKey renders it. An
	// error means the row can't be known (its value did not parse, or the
	// table stopped reading): the record asking must fail, not go on
	// without the row.
	Get(key string) (row map[string]any, found bool, err error)
}

var tableSchemes = map[string]bool{}

// DeclareTable says that scheme's lookups are Tables keyed by their
// records' keys, so a lookup of that scheme names no key column.
func DeclareTable(scheme string) {
	mu.Lock()
	defer mu.Unlock()
	tableSchemes[scheme] = true
}

// IsTable says whether uri names a lookup of a scheme DeclareTable
// declared.
func IsTable(uri string) bool {
	t, err := Parse(uri)
	if err != nil {
		return false
	}
	mu.RLock()
	defer mu.RUnlock()
	return tableSchemes[t.Scheme]
}

// KeptTable is a Table that can keep its rows in a directory of the
// node's state instead of in memory, so that a restart reads only what its
// log gained since. KeepIn is called before Start, with a directory that
// belongs to this table alone.
type KeptTable interface {
	Table
	KeepIn(dir string)
}
