package state

import (
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// Option configures a Store opened with Open.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	keep     int
	logger   *slog.Logger
	inMemory bool
	// tune adjusts Badger's options last; tests use it to control compaction.
	tune func(badger.Options) badger.Options
}

func defaultConfig() config {
	return config{
		keep:   5,
		logger: nil, // silent
	}
}

func (c *config) validate() error {
	if c.keep < 1 {
		return fmt.Errorf("state: keep %d: must keep at least 1 checkpoint", c.keep)
	}
	return nil
}

// WithKeep sets how many complete periodic checkpoints stay readable, overriding
// the default of 5. Savepoints do not count against it. n < 1 makes Open fail.
func WithKeep(n int) Option {
	return optionFunc(func(c *config) { c.keep = n })
}

// WithLogger sends Badger's own warnings and errors to l, overriding the default of
// discarding them. Badger's info and debug messages are always dropped.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithInMemory keeps everything in memory (Badger's InMemory mode), overriding the
// default of storing under dir, which is then ignored. Nothing survives Close; it
// is meant for tests.
func WithInMemory() Option {
	return optionFunc(func(c *config) { c.inMemory = true })
}

// badgerLogger adapts slog to Badger's Logger, keeping warn level and above.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(trim(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(trim(fmt.Sprintf(f, a...)), "component", "badger")
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
