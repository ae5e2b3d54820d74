package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
)

// Lookup reads a MySQL table for lookup(name, key): the whole table at each
// Load, keyed by one column. Dimension tables are small; reading them whole
// keeps the cache exact (rows deleted upstream disappear too).
type Lookup struct {
	loc   location
	db    *sql.DB
	key   string
	query string
}

var _ connectors.Lookup = (*Lookup)(nil)

// OpenLookup opens a lookup on the table t names, keyed by column key. It
// does not connect: the first Load does, so a server that is down at start
// is waited for like one that goes down later.
func OpenLookup(t connectors.Target, key string) (*Lookup, error) {
	loc, err := parseLocation(t)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("%s: a lookup needs a key column", loc)
	}
	db, err := openDB(loc, t, 2)
	if err != nil {
		return nil, err
	}
	return &Lookup{loc: loc, db: db, key: key, query: "SELECT * FROM " + quote(loc.table)}, nil
}

// Load reads every row of the table.
func (l *Lookup) Load(ctx context.Context) (map[string]map[string]any, error) {
	rows, err := l.db.QueryContext(ctx, l.query)
	if err != nil {
		return nil, explain(l.loc, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, explain(l.loc, err)
	}
	keyAt := -1
	names := make([]string, len(types))
	for i, ct := range types {
		names[i] = ct.Name()
		if strings.EqualFold(ct.Name(), l.key) {
			keyAt = i
		}
	}
	if keyAt < 0 {
		return nil, fmt.Errorf("%s: key column %q is not a column of %s.%s (columns: %s)", l.loc, l.key, l.loc.db, l.loc.table, strings.Join(names, ", "))
	}
	out := map[string]map[string]any{}
	raw := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, explain(l.loc, err)
		}
		row := make(map[string]any, len(types))
		for i, ct := range types {
			row[names[i]] = convert(ct.DatabaseTypeName(), raw[i])
		}
		out[connectors.LookupKey(row[names[keyAt]])] = row
	}
	if err := rows.Err(); err != nil {
		return nil, explain(l.loc, err)
	}
	return out, nil
}

// convert turns a column's text into the Row value type it stands for.
func convert(typ string, b sql.RawBytes) any {
	if b == nil {
		return nil
	}
	s := string(b)
	switch typ {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "YEAR":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	case "UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT", "UNSIGNED INT", "UNSIGNED BIGINT":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	case "FLOAT", "DOUBLE", "DECIMAL":
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return s
}

// Transient says whether a Load error may pass on its own.
func (l *Lookup) Transient(err error) bool { return transient(err) }

// Close closes the pool.
func (l *Lookup) Close() error { return l.db.Close() }
