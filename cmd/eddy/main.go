// Command eddy runs stream-processing pipelines written in Lua.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

var verbosity struct {
	verbose, quiet bool
	logFormat      string
}

// newLogHandler is the log handler --log-format names, writing to w: text
// (slog's key=value lines) or json (one object a line, for log shippers).
func newLogHandler(format string, w io.Writer, level slog.Level) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "eddy",
		Short:         "eddy runs stream-processing pipelines written in Lua",
		Long:          "eddy runs stream-processing pipelines written in Lua: one file per pipeline says where records come from,\nhow to parse, filter, key and aggregate them, and where the results go. See docs/pipelines.md.",
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			switch {
			case verbosity.verbose:
				level = slog.LevelDebug
			case verbosity.quiet:
				level = slog.LevelWarn
			}
			h, err := newLogHandler(verbosity.logFormat, tty.Stderr(), level)
			if err != nil {
				return err
			}
			slog.SetDefault(slog.New(h))
			return nil
		},
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	cmd.PersistentFlags().BoolVarP(&verbosity.verbose, "verbose", "v", false, "log debug details (checkpoints, triggers) to stderr")
	cmd.PersistentFlags().BoolVarP(&verbosity.quiet, "quiet", "q", false, "log only warnings and errors")
	cmd.PersistentFlags().StringVar(&verbosity.logFormat, "log-format", "text", "log lines on stderr as text (key=value) or json (one object a line)")
	cmd.AddCommand(runCmd(), testCmd(), checkCmd(), genCmd(), checkpointsCmd(), replayCmd(), statusCmd(), queryCmd(), produceCmd(), consumeCmd(), topicsCmd(), versionCmd())
	withUsageOnArgErrors(cmd)
	return cmd
}

// withUsageOnArgErrors makes a wrong number of arguments, in cmd and every
// command below it, say what the command takes: cobra's own message
// ("accepts 1 arg(s), received 0") names neither.
func withUsageOnArgErrors(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		c := cmd
		cmd.Args = func(cc *cobra.Command, args []string) error {
			if err := check(cc, args); err != nil {
				return fmt.Errorf("%w\nusage: %s\n(see %s --help)", err, c.UseLine(), c.CommandPath())
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		withUsageOnArgErrors(sub)
	}
}
