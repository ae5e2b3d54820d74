// Command eddy runs stream-processing pipelines written in Lua.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/eddy-stream/eddy/connectors/all"
)

// exitError carries an exit code for errors whose message was already
// printed (failing tests).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "eddy:", err)
		os.Exit(1)
	}
}

var verbosity struct{ verbose, quiet bool }

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "eddy",
		Short:         "eddy runs stream-processing pipelines written in Lua",
		Long:          "eddy runs stream-processing pipelines written in Lua: one file per pipeline says where records come from,\nhow to parse, filter, key and aggregate them, and where the results go. See docs/pipelines.md.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			level := slog.LevelInfo
			switch {
			case verbosity.verbose:
				level = slog.LevelDebug
			case verbosity.quiet:
				level = slog.LevelWarn
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	cmd.PersistentFlags().BoolVarP(&verbosity.verbose, "verbose", "v", false, "log debug details (checkpoints, triggers) to stderr")
	cmd.PersistentFlags().BoolVarP(&verbosity.quiet, "quiet", "q", false, "log only warnings and errors")
	cmd.AddCommand(runCmd(), testCmd(), genCmd(), checkpointsCmd(), replayCmd(), statusCmd(), queryCmd(), produceCmd(), consumeCmd(), topicsCmd())
	return cmd
}
