package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

func checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check PIPELINE.lua...",
		Short: "check pipelines without running them",
		Long: `Load each pipeline and check it without reading any input or connecting anywhere: the Lua
compiles and its table is a valid pipeline (fields and their types, the key, aggregates on
declared fields, windows, emit, order_by), and the source, sink and lookup URIs it names are
connectors eddy has, with parameters they read. Values that only a connection can check (a
broker's address, a table's columns, a file's existence) are checked when eddy run opens them.

Every script is checked and every problem is listed, one a line on stderr; the exit status
is 1 when there is any. A script that does not load reports that one problem: the Lua has
to load before its URIs can be read.`,
		Example: `  eddy check scripts/*.lua`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			problems := 0
			for _, path := range args {
				found := checkPipeline(path)
				if len(found) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
					continue
				}
				bad++
				problems += len(found)
				for _, p := range found {
					fmt.Fprintln(cmd.ErrOrStderr(), p)
				}
			}
			if problems > 0 {
				return fmt.Errorf("check: %s in %d of %d pipeline(s)", fmt.Sprintf("%d problem%s", problems, plural(problems)), bad, len(args))
			}
			return nil
		},
	}
}

// checkPipeline loads the pipeline at path and lists its problems, each
// starting with path: the load error, else every connector URI that names
// no connector or sets a parameter its connector does not read.
func checkPipeline(path string) []string {
	// Load's errors start with the script's base name ("x.lua:3: …");
	// path says which x.lua.
	named := func(err error) string {
		msg, base := err.Error(), filepath.Base(path)
		if rest, ok := strings.CutPrefix(msg, base); ok && strings.HasPrefix(rest, ":") {
			return path + rest
		}
		return path + ": " + msg
	}
	p, err := scripting.Load(path, scripting.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return []string{named(err)}
	}
	var problems []string
	if err := checkTriggerColumn(p); err != nil {
		problems = append(problems, named(err))
	}
	note := func(what, kind, uri string) {
		if err := connectors.Check(kind, uri); err != nil {
			problems = append(problems, path+": "+what+": "+err.Error())
		}
	}
	if p.Source != "" {
		note("source", "source", p.Source)
	}
	names := make([]string, 0, len(p.Sinks))
	for name := range p.Sinks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		note("sinks."+name, "sink", p.Sinks[name])
	}
	for _, l := range p.Lookups() {
		note("lookups."+l.Name, "lookup", l.Source)
	}
	return problems
}
