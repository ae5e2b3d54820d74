package connectors

import (
	"context"
	"fmt"
	"strconv"
)

// Lookup is a dimension table a pipeline reads by key (lookup("users", id)
// in Lua). The caller caches what Load returns and calls it again to
// refresh, so an implementation only needs to read the whole table.
type Lookup interface {
	// Load reads every row, keyed by the key column's value as LookupKey
	// renders it. An error for which Transient is true (the server is
	// down) makes the caller wait and retry.
	Load(ctx context.Context) (map[string]map[string]any, error)
	// Transient says whether err, returned by Load, may pass on its own.
	Transient(err error) bool
	Close() error
}

// LookupFactory opens a lookup on a target whose rows are keyed by the
// column key.
type LookupFactory func(t Target, key string) (Lookup, error)

var lookups = map[string]LookupFactory{}

// RegisterLookup makes scheme open lookups with f, which reads the URI
// parameters named by params.
func RegisterLookup(scheme string, f LookupFactory, params ...string) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := lookups[scheme]; dup {
		panic("connectors: lookup scheme registered twice: " + scheme)
	}
	lookups[scheme] = f
	declare("lookup", scheme, params)
}

// OpenLookup opens the lookup a URI names, keyed by the column key.
func OpenLookup(uri, key string) (Lookup, error) {
	t, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	mu.RLock()
	f, ok := lookups[t.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("lookup %q: unknown scheme %q (known: %s)", uri, t.Scheme, known(lookups))
	}
	if err := checkURI("lookup", t); err != nil {
		return nil, fmt.Errorf("lookup %q: %w", uri, err)
	}
	l, err := f(t, key)
	if err != nil {
		return nil, fmt.Errorf("lookup %q: %w", uri, err)
	}
	return l, nil
}

// LookupKey renders a key value the way Load keys its rows: strings as
// they are, whole numbers without a fraction ("1001", never "1001.0"),
// other values as JSON.
func LookupKey(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case float64:
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10)
		}
	case []byte:
		return string(v)
	}
	return string(AppendValue(nil, v))
}
