package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/state"
)

func checkpointsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "checkpoints", Short: "inspect checkpoints"}
	var dir string
	list := &cobra.Command{
		Use:   "list --state DIR",
		Short: "list the kept checkpoints: id, time, positions, keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("checkpoints list needs --state DIR, the directory a run was given")
			}
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("state directory: %w", err)
			}
			store, err := state.Open(dir)
			if err != nil {
				return err
			}
			defer store.Close()
			cps, err := store.List()
			if err != nil {
				return err
			}
			if len(cps) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no complete checkpoints in", dir)
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME\tKEYS\tCHANGED\tPOSITIONS")
			for _, cp := range cps {
				fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\n", cp.ID, cp.Time.Local().Format(time.DateTime), cp.Keys, cp.Changed, positions(cp))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&dir, "state", "", "the state directory of a pipeline's runs")
	cmd.AddCommand(list)
	return cmd
}

func positions(cp state.Checkpoint) string {
	ids := make([]string, 0, len(cp.Positions))
	for id := range cp.Positions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id + "=" + string(cp.Positions[id])
	}
	return strings.Join(parts, " ")
}
