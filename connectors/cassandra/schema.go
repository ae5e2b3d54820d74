package cassandra

import (
	"context"
	"fmt"
	"slices"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/eddy-stream/eddy/connectors"
)

// column is one column of the table, from system_schema.columns.
type column struct {
	name, typ, kind string
	position        int
}

// readColumns returns the table's columns; none when it does not exist.
func readColumns(ctx context.Context, sess *gocql.Session, ks, table string) (map[string]column, error) {
	iter := sess.Query("SELECT column_name, type, kind, position FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?", ks, table).
		IterContext(ctx)
	cols := map[string]column{}
	var c column
	for iter.Scan(&c.name, &c.typ, &c.kind, &c.position) {
		cols[c.name] = c
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return cols, nil
}

func keyspaceExists(ctx context.Context, sess *gocql.Session, ks string) (bool, error) {
	var name string
	err := sess.Query("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?", ks).ScanContext(ctx, &name)
	if err == gocql.ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// keyColumns lists the columns of kind ("partition_key", "clustering") in
// order.
func keyColumns(cols map[string]column, kind string) []string {
	var pk []column
	for _, c := range cols {
		if c.kind == kind {
			pk = append(pk, c)
		}
	}
	slices.SortFunc(pk, func(a, b column) int { return a.position - b.position })
	names := make([]string, len(pk))
	for i, c := range pk {
		names[i] = c.name
	}
	return names
}

// createStatements builds CREATE KEYSPACE and CREATE TABLE from
// ?schema=col:type,… and ?key=col,… (the partition key) and
// ?clustering=col,….
func createStatements(ks, table, schema, key, clustering string, rf int64) ([]string, error) {
	if schema == "" || key == "" {
		return nil, fmt.Errorf("create=true needs schema=COLUMN:TYPE,… and key=COLUMN[,COLUMN] (the partition key)")
	}
	var defs []string
	have := map[string]bool{}
	for _, part := range connectors.SplitList(schema) {
		name, typ, ok := strings.Cut(part, ":")
		if !ok || name == "" || typ == "" {
			return nil, fmt.Errorf("schema: %q is not COLUMN:TYPE", part)
		}
		defs = append(defs, ident(name)+" "+typ)
		have[name] = true
	}
	check := func(what string, cols []string) error {
		for _, c := range cols {
			if !have[c] {
				return fmt.Errorf("%s column %q is not in schema", what, c)
			}
		}
		return nil
	}
	pk, ck := connectors.SplitList(key), connectors.SplitList(clustering)
	if err := check("key", pk); err != nil {
		return nil, err
	}
	if err := check("clustering", ck); err != nil {
		return nil, err
	}
	primary := "(" + joinIdents(pk) + ")"
	if len(ck) > 0 {
		primary += ", " + joinIdents(ck)
	}
	return []string{
		fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}", ident(ks), rf),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (%s, PRIMARY KEY (%s))", ident(ks), ident(table), strings.Join(defs, ", "), primary),
	}, nil
}

func joinIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// ident quotes a CQL identifier so case and odd characters survive.
func ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
