package scripting

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
)

// Lookups whose source keeps itself current (connectors.Table: a
// compacted Kafka topic) are not cached or refreshed here: once started,
// a lookup asks the table itself, which answers with the row as it is at
// that moment.

// liveTable is a started connectors.Table, kept in lookupTable.live.
type liveTable struct{ t connectors.Table }

// OpenTables opens every lookup of the pipeline and starts those that are
// tables read from a log (a Kafka topic), before the run's first record:
// each is read to its end first (unless its URI says bootstrap=false), so
// the first records see every row written before the run. A lookup that
// can't be opened, or a table topic that does not exist, is an error
// naming the lookup. close stops the tables' readers.
func (p *Pipeline) OpenTables(ctx context.Context, opts ...TableOption) (close func(), err error) {
	var cfg tableConfig
	for _, o := range opts {
		o(&cfg)
	}
	var started []connectors.Table
	close = func() {
		for _, t := range started {
			_ = t.Close()
		}
	}
	for _, spec := range p.Lookups() {
		lt := p.lookups[spec.Name]
		lt.mu.Lock()
		tb, err := lt.open(ctx, cfg)
		lt.mu.Unlock()
		if err != nil {
			close()
			return func() {}, fmt.Errorf("%s: %w", p.Script, err)
		}
		if tb != nil {
			started = append(started, tb)
		}
	}
	return close, nil
}

// TableOption configures OpenTables.
type TableOption func(*tableConfig)

type tableConfig struct{ stateDir string }

// KeepTablesIn keeps the rows of tables that can keep them (a compacted
// Kafka topic) under dir, the node's state directory, each in
// dir/tables/LOOKUP (the lookup's name, unique in a pipeline: two lookups
// of one topic, or of topics of one name in two clusters, keep apart), so
// a restart reads only what their topics gained since; without it they are
// read into memory from their topics' starts at each start.
func KeepTablesIn(dir string) TableOption { return func(c *tableConfig) { c.stateDir = dir } }

// open opens the lookup's source, if it isn't yet, and starts it when it
// is a table; tb is the table it started. lt.mu is held.
func (lt *lookupTable) open(ctx context.Context, cfg tableConfig) (tb connectors.Table, err error) {
	if lt.openErr != nil {
		return nil, lt.openErr
	}
	if lt.src == nil {
		src, err := connectors.OpenLookup(lt.spec.Source, lt.spec.Key)
		if err != nil {
			lt.openErr = fmt.Errorf("lookup %s: %w", lt.spec.Name, err)
			return nil, lt.openErr
		}
		lt.src = src
	}
	tb, ok := lt.src.(connectors.Table)
	if !ok || lt.live.Load() != nil {
		return nil, nil
	}
	if kt, ok := tb.(connectors.KeptTable); ok && cfg.stateDir != "" {
		dir, err := keptTableDir(cfg.stateDir, lt.spec.Name)
		if err != nil {
			lt.openErr = err
			return nil, err
		}
		kt.KeepIn(dir)
	}
	if err := tb.Start(ctx); err != nil {
		err = fmt.Errorf("lookup %s: %w", lt.spec.Name, err)
		if !errors.Is(err, context.Canceled) {
			lt.openErr = err
		}
		_ = tb.Close()
		return nil, err
	}
	lt.live.Store(&liveTable{t: tb})
	return tb, nil
}

// keptTableDir is where the table of the lookup name is kept under the
// state directory; a name that is not a plain file name is refused.
func keptTableDir(stateDir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("lookup %q: a table kept in --state is stored under its lookup's name, which must be a plain file name (no /, \\, . or ..)", name)
	}
	return filepath.Join(stateDir, "tables", name), nil
}

// getLive answers from a started table; ok is false when the lookup is
// not one.
func (lt *lookupTable) getLive(key string) (row map[string]any, found, ok bool, err error) {
	l := lt.live.Load()
	if l == nil {
		return nil, false, false, nil
	}
	row, found, err = l.t.Get(key)
	if err != nil {
		err = fmt.Errorf("lookup %s: %w", lt.spec.Name, err)
	}
	return row, found, true, err
}

// checkLookupKey refuses a lookup without a source, and one whose key
// does not fit its kind: a table read from a log is keyed by its
// records' keys, any other lookup by the column key names.
func checkLookupKey(spec LookupSpec) error {
	table := connectors.IsTable(spec.Source)
	switch {
	case spec.Source == "" || (spec.Key == "" && !table):
		return fmt.Errorf("lookups.%s: want source = URI and key = the column to look rows up by", spec.Name)
	case spec.Key != "" && table:
		return fmt.Errorf("lookups.%s: %s is a table keyed by its records' keys: leave out key = %q", spec.Name, spec.Source, spec.Key)
	}
	return nil
}
