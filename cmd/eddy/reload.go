package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/internal/pipetest"
	"github.com/eddy-stream/eddy/scripting"
)

// Hot reload: eddy run reloads its script on SIGHUP, and with --watch
// whenever the file's content changes. The engine decides whether the new
// version may take over (actors.Reload); here it is loaded with the run's
// flags and its inline tests are run, so a version with an error never
// reaches it as a working one.

// watchInterval is how often --watch reads the script for a change.
const watchInterval = 250 * time.Millisecond

// watchScript delivers the new versions of the script at path (running
// now: the hash of the version running) until ctx ends or stop is called.
func watchScript(ctx context.Context, path, running string, f runFlags, log *slog.Logger) (reloads <-chan actors.Reload, stop func()) {
	out := make(chan actors.Reload)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var tick <-chan time.Time
	var ticker *time.Ticker
	if f.watch {
		ticker = time.NewTicker(watchInterval)
		tick = ticker.C
		log.Info("watching the script for changes", "file", path)
	} else {
		log.Debug("SIGHUP reloads the script", "file", path)
	}
	w := &watcher{path: path, f: f, log: log, seen: running, out: out}
	go func() {
		defer signal.Stop(hup)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: checking the script for a new version", "file", path)
				w.check(ctx, "SIGHUP", true)
			case <-tick:
				w.check(ctx, "the file changed", false)
			}
		}
	}()
	return out, cancel
}

type watcher struct {
	path string
	f    runFlags
	log  *slog.Logger
	// seen is the hash of the content last looked at (loaded, refused or
	// running), so one change is reloaded once; pending the hash of a
	// change read once and not yet again (see check); readErr the last
	// error reading the file, so it is logged once.
	seen, pending, readErr string
	out                    chan<- actors.Reload
}

// check reads the script and, when it changed (or always, with force),
// loads it and hands it, or what is wrong with it, to the engine. Without
// force a change is acted on once two reads in a row find it: a writer
// that truncates the file and then writes it (os.WriteFile, many editors)
// can be read in between, and that empty or half version would be refused
// (or, worse, taken over) as if it were a version the user meant.
func (w *watcher) check(ctx context.Context, why string, force bool) {
	src, err := os.ReadFile(w.path)
	if err != nil {
		if !force && err.Error() == w.readErr {
			return
		}
		w.readErr = err.Error()
		w.send(ctx, actors.Reload{Err: fmt.Errorf("reading the script: %w", err), Why: why})
		return
	}
	w.readErr = ""
	hash := fmt.Sprintf("%x", sha256.Sum256(src))
	if !force {
		if hash == w.seen {
			w.pending = ""
			return
		}
		if hash != w.pending {
			w.pending = hash
			return
		}
	}
	w.seen, w.pending = hash, ""
	p, err := loadPipelineSource(w.path, src, w.f, w.log)
	if err == nil {
		err = runInlineTests(ctx, p)
	}
	w.send(ctx, actors.Reload{Pipeline: p, Err: err, Why: why})
}

func (w *watcher) send(ctx context.Context, r actors.Reload) {
	if r.Err != nil {
		r.Pipeline = nil
	}
	select {
	case w.out <- r:
	case <-ctx.Done():
	}
}

// runInlineTests fails when one of p's inline tests does.
func runInlineTests(ctx context.Context, p *scripting.Pipeline) error {
	if len(p.Tests) == 0 {
		return nil
	}
	results, err := pipetest.Run(ctx, p)
	if err != nil {
		return err
	}
	for _, r := range results {
		if !r.Passed() {
			return fmt.Errorf("%s: inline test %q fails: %s", p.Script, r.Name, strings.TrimSpace(strings.Join(r.Failures, "; ")))
		}
	}
	return nil
}
