package main

import (
	"errors"
	"fmt"
	"log/slog"
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
			store, err := openExisting(dir, "checkpoints list needs --state DIR, the directory a run was given")
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
			fmt.Fprintln(w, "ID\tSAVEPOINT\tTIME\tKEYS\tCHANGED\tPOSITIONS")
			for _, cp := range cps {
				name := cp.Name
				if name == "" {
					name = "-"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%s\n", cp.ID, name, cp.Time.Local().Format(time.DateTime), cp.Keys, cp.Changed, positions(cp))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&dir, "state", "", "the state directory of a pipeline's runs")
	cmd.AddCommand(append([]*cobra.Command{list, verifyCmd()}, savepointCmds(&dir)...)...)
	return cmd
}

// verifyCmd is checkpoints verify: a state directory checked without
// running, and without changing it.
func verifyCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "verify --state DIR",
		Short: "check a state directory without running: every checkpoint read back whole, with checksums, key counts and digests",
		Long: `Check a state directory without running a pipeline and without changing it: Badger's
manifest and every table's checksums, then every kept checkpoint read back whole against the
number of keys and the digest it was written with, and the record of the last checkpoint.
It exits 0 with a summary when all is well, and 1 naming each damaged file or checkpoint
otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("checkpoints verify needs --state DIR, the directory a run was given")
			}
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("state directory: %w", err)
			}
			r, err := state.Verify(dir)
			if err != nil {
				return err
			}
			return printReport(cmd, dir, r)
		},
	}
	cmd.Flags().StringVar(&dir, "state", "", "the state directory of a pipeline's runs")
	return cmd
}

func printReport(cmd *cobra.Command, dir string, r state.Report) error {
	out := cmd.OutOrStdout()
	for _, cp := range r.Checkpoints {
		fmt.Fprintf(out, "checkpoint %d: %d keys, digest %016x\n", cp.ID, cp.Keys, cp.Digest)
	}
	if len(r.Damaged) == 0 {
		if len(r.Checkpoints) == 0 {
			fmt.Fprintf(out, "%s: intact, no complete checkpoint\n", dir)
			return nil
		}
		last := r.Checkpoints[len(r.Checkpoints)-1]
		fmt.Fprintf(out, "%s: intact: %d checkpoints read back whole, the last %d with %d keys (%s on disk)\n", dir, len(r.Checkpoints), last.ID, last.Keys, sizeString(r.Size))
		return nil
	}
	for _, d := range r.Damaged {
		fmt.Fprintln(cmd.ErrOrStderr(), "damaged:", d)
	}
	return fmt.Errorf("%s is damaged (%s above): %s", dir, fmt.Sprintf("%d problem%s", len(r.Damaged), plural(len(r.Damaged))), restoreHint)
}

// openState opens a state directory, adding to the error what a user can
// do about a damaged one.
func openState(dir string, opts ...state.Option) (*state.Store, error) {
	s, err := state.Open(dir, opts...)
	if errors.Is(err, state.ErrDamaged) {
		return nil, fmt.Errorf("%w\n  nothing was run. %s", err, recoverHint(dir))
	}
	return s, err
}

func recoverHint(dir string) string {
	return fmt.Sprintf("Check the directory with: eddy checkpoints verify --state %s\n  then %s", dir, restoreHint)
}

// restoreHint is what to do with a damaged state directory.
const restoreHint = "restore it from a copy taken while eddy was stopped, or start over from nothing with --reset-state (the whole input is read again)"

func sizeString(n int64) string {
	if n >= 10<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", (n+1023)>>10)
}

// openExisting opens the state directory of earlier runs; without one it
// fails with missing, which says what to give.
func openExisting(dir, missing string) (*state.Store, error) {
	if dir == "" {
		return nil, errors.New(missing)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return openState(dir, state.WithLogger(slog.Default()))
}

// savepointCmds are checkpoints save and checkpoints delete.
func savepointCmds(dir *string) []*cobra.Command {
	var id uint64
	openStore := func() (*state.Store, error) {
		return openExisting(*dir, "give --state DIR, the directory a run was given")
	}
	save := &cobra.Command{
		Use:   "save NAME --state DIR",
		Short: "keep the last checkpoint (or --checkpoint ID) as a named savepoint, until deleted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			cp, err := store.Save(id, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "checkpoint %d saved as %s; replay it with eddy replay PIPELINE.lua --state %s --from-savepoint %s\n", cp.ID, cp.Name, *dir, cp.Name)
			return nil
		},
	}
	save.Flags().Uint64Var(&id, "checkpoint", 0, "the checkpoint to save (default: the last)")
	del := &cobra.Command{
		Use:   "delete NAME --state DIR",
		Short: "delete a savepoint, releasing the history it kept",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := openStore()
			if err != nil {
				return err
			}
			defer store.Close()
			return store.DeleteSavepoint(args[0])
		},
	}
	for _, c := range []*cobra.Command{save, del} {
		c.Flags().StringVar(dir, "state", "", "the state directory of a pipeline's runs")
	}
	return []*cobra.Command{save, del}
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
