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
	"time"

	"github.com/spf13/cobra"

	_ "github.com/eddy-stream/eddy/connectors/all"
)

// exitError carries an exit code for errors whose message was already
// printed (failing tests).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	stop := onSignals(cancel)
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

// stopBackstop is how long after the first signal the process exits
// whatever it is doing. The engine stops well within it (actors.Config
// StopTimeout); this is for a wait outside the engine that hangs.
const stopBackstop = 20 * time.Second

// onSignals cancels the command's context on the first SIGINT or SIGTERM
// (a clean stop), exits at once on the second, and exits stopBackstop
// after the first if the process is still running. Exit codes follow the
// shell's 128+signal convention: 130 for SIGINT, 143 for SIGTERM. stop
// ends the watch.
func onSignals(cancel context.CancelFunc) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var first os.Signal
		select {
		case first = <-sigs:
		case <-done:
			return
		}
		slog.Info("stopping on "+signalName(first)+"; a second signal exits at once", "signal", signalName(first))
		cancel()
		select {
		case s := <-sigs:
			slog.Warn("second signal: exiting at once without a stop checkpoint; the last complete checkpoint stands",
				"signal", signalName(s), "exit_code", exitCode(s))
			os.Exit(exitCode(s))
		case <-time.After(stopBackstop):
			slog.Error(fmt.Sprintf("still running %v after %s: exiting; the last complete checkpoint stands", stopBackstop, signalName(first)),
				"exit_code", exitCode(first))
			os.Exit(exitCode(first))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// exitCode is the shell's exit status for a process a signal ended.
func exitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	if s == os.Interrupt {
		return "SIGINT"
	}
	return s.String()
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
