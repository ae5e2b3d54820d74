package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
)

// console is how eddy shares the terminal: a progress line on stderr, when
// stderr is a terminal, drawn over itself and never ended by a newline; and
// everything else written to stdout or stderr through it, which erases the
// progress line first, so a result or a log line always starts a line of
// its own. The next tick draws the progress line again below it.
type console struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	outTTY, errTTY bool
	// width is the terminal's width: a longer progress line would wrap,
	// and erasing it would leave its first part behind.
	width func() int
	drawn bool // a progress line is on stderr
}

// tty is the process's console on its own stdout and stderr.
var tty = newConsole(os.Stdout, os.Stderr, isTerminal(os.Stdout), isTerminal(os.Stderr), func() int {
	w, _, err := term.GetSize(int(os.Stderr.Fd()))
	if err != nil {
		return 0
	}
	return w
})

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func newConsole(stdout, stderr io.Writer, outTTY, errTTY bool, width func() int) *console {
	return &console{stdout: stdout, stderr: stderr, outTTY: outTTY, errTTY: errTTY, width: width}
}

// Stdout writes results. It erases the progress line first when stdout is
// a terminal too (the same one, as a rule); piped, the results never meet
// the progress line.
func (c *console) Stdout() io.Writer { return consoleWriter{c: c, w: c.stdout, erase: c.outTTY} }

// Stderr writes logs and dead letters, erasing the progress line first.
func (c *console) Stderr() io.Writer { return consoleWriter{c: c, w: c.stderr, erase: true} }

type consoleWriter struct {
	c     *console
	w     io.Writer
	erase bool
}

func (w consoleWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.erase {
		w.c.eraseLocked()
	}
	return w.w.Write(p)
}

// eraseLine returns the cursor to the line's start and clears the line.
const eraseLine = "\r\x1b[K"

func (c *console) eraseLocked() {
	if c.drawn {
		io.WriteString(c.stderr, eraseLine)
		c.drawn = false
	}
}

// draw shows line as the progress line, cut to the terminal's width.
func (c *console) draw(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.width(); w > 1 && utf8.RuneCountInString(line) >= w {
		line = string([]rune(line)[:w-1])
	}
	io.WriteString(c.stderr, eraseLine+line)
	c.drawn = true
}

// erase removes the progress line.
func (c *console) erase() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eraseLocked()
}

// progressEvery is how often the progress line is redrawn; the rate is
// measured over rateWindow, so a pause shows as idle within it.
const (
	progressEvery = 250 * time.Millisecond
	rateWindow    = 2 * time.Second
)

// startProgress shows records read, the rate and the run's counts on c's
// stderr while a run goes on, when enabled and stderr is a terminal. total
// is the number of records the input holds, 0 when unknown; src's files
// and bytes show when it tells them (connectors.Measured). It returns the
// function that stops it and erases the line.
func startProgress(c *console, enabled bool, st *actors.Stats, total int64, src connectors.Source, lag *lagProbe) func() {
	if !enabled || !c.errTTY {
		return func() {}
	}
	measured, _ := src.(connectors.Measured)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		start := time.Now()
		type sample struct {
			at   time.Time
			read int64
		}
		samples := []sample{{start, 0}}
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for frame := 0; ; frame++ {
			select {
			case <-done:
				c.erase()
				return
			case now := <-t.C:
				read := st.Read.Load()
				samples = append(samples, sample{now, read})
				for len(samples) > 2 && now.Sub(samples[1].at) >= rateWindow {
					samples = samples[1:]
				}
				old := samples[0]
				var extent connectors.Extent
				if measured != nil {
					extent = measured.Extent()
				}
				behind, lagKnown := lag.behind(now)
				c.draw(progressLine(progress{
					extent: extent, behind: behind, lagKnown: lagKnown,
					frame: frame, read: read, total: total, elapsed: now.Sub(start),
					rate:   float64(read-old.read) / now.Sub(old.at).Seconds(),
					failed: st.Failed.Load(), checkpoints: st.Checkpoints.Load(),
					restoring: st.Restoring.Load(), restoreDone: st.RestoreDone.Load(), restoreTotal: st.RestoreTotal.Load(),
				}))
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// progress is what one progress line shows.
type progress struct {
	frame                                int
	read, total                          int64 // total 0: unknown
	behind                               int64 // records the source holds beyond its position
	lagKnown                             bool  // the source tells behind (Kafka)
	extent                               connectors.Extent
	rate                                 float64
	elapsed                              time.Duration
	failed, checkpoints                  int64
	restoring, restoreDone, restoreTotal int64
}

var spinner = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// progressLine renders p: "⠹ 927,168 of 1,000,000 records (92%) ·
// 489.6k rec/s · 2s · failed 0 · checkpoints 3", or for a source that
// tells its files "⠹ 927,168 records · 3 of 8 files done, 120 MiB of
// 340 MiB (35%) · …".
func progressLine(p progress) string {
	var b strings.Builder
	b.WriteRune(spinner[p.frame%len(spinner)])
	b.WriteString(" " + humanize.Comma(p.read))
	switch {
	case p.total > 0:
		fmt.Fprintf(&b, " of %s records (%d%%)", humanize.Comma(p.total), min(100, p.read*100/p.total))
	case p.lagKnown && p.behind > 0:
		// A Kafka source: what is left of what there is now, from the
		// partitions' positions (records read but not yet processed count
		// in both, so no total is made of the two).
		fmt.Fprintf(&b, " records · %s behind", humanize.Comma(p.behind))
	case p.lagKnown:
		b.WriteString(" records · caught up")
	default:
		b.WriteString(" records")
	}
	if x := p.extent; x.FilesFound > 0 {
		fmt.Fprintf(&b, " · %s of %s files done, %s of %s", humanize.Comma(x.FilesDone), humanize.Comma(x.FilesFound),
			connectors.FormatSize(x.BytesRead), connectors.FormatSize(x.BytesFound))
		if x.BytesFound > 0 {
			fmt.Fprintf(&b, " (%d%%)", min(100, x.BytesRead*100/x.BytesFound))
		}
	}
	b.WriteString(" · " + formatRate(p.rate))
	b.WriteString(" · " + p.elapsed.Truncate(time.Second).String())
	fmt.Fprintf(&b, " · failed %s · checkpoints %s", humanize.Comma(p.failed), humanize.Comma(p.checkpoints))
	if p.restoring > 0 {
		// A partition that moved here reads its changelog first.
		fmt.Fprintf(&b, " · restoring %d partition(s): %s of %s changes", p.restoring, humanize.Comma(p.restoreDone), humanize.Comma(p.restoreTotal))
	}
	return b.String()
}

// formatRate renders records per second: "idle" when none came in the
// last rateWindow, else in rec/s with k and M for thousands and millions.
func formatRate(r float64) string {
	switch {
	case r <= 0:
		return "idle"
	case r < 10:
		return fmt.Sprintf("%.1f rec/s", r)
	case r < 1000:
		return fmt.Sprintf("%.0f rec/s", r)
	case r < 1e6:
		return fmt.Sprintf("%.1fk rec/s", r/1e3)
	}
	return fmt.Sprintf("%.2fM rec/s", r/1e6)
}

// inputTotal is the number of records a source URI holds when that is
// known before reading: a gen: source's count. A resumed run has read part
// of it already, so it has none.
func inputTotal(srcURI string, resumed bool) int64 {
	t, err := connectors.Parse(srcURI)
	if err != nil || t.Scheme != "gen" || resumed {
		return 0
	}
	n, err := t.IntParam("count", 0, 0)
	if err != nil {
		return 0
	}
	return n
}

// lagProbe asks the running engine, at most once every lagEvery, how many
// records its partitions hold beyond their positions (Kafka's lag), for the
// progress line. Its zero value, or one whose run has not started, knows
// nothing.
type lagProbe struct {
	h       atomic.Pointer[actors.Handle]
	at      time.Time
	last    int64
	known   bool
	pending chan lagAnswer
}

type lagAnswer struct {
	behind     int64
	known      bool
	unanswered bool // the status query failed
}

const lagEvery = time.Second

// behind returns the lag as last answered; it asks again in the background
// when that answer is older than lagEvery, so a slow engine never holds up
// the progress line.
func (l *lagProbe) behind(now time.Time) (int64, bool) {
	select {
	case a := <-l.pending:
		l.pending = nil
		if !a.unanswered { // (a busy engine's silence keeps the last answer)
			l.last, l.known = a.behind, a.known
		}
	default:
	}
	h := l.h.Load()
	if h == nil || l.pending != nil || now.Sub(l.at) < lagEvery {
		return l.last, l.known
	}
	l.at = now
	l.pending = make(chan lagAnswer, 1)
	go func(out chan<- lagAnswer) {
		ctx, cancel := context.WithTimeout(context.Background(), lagEvery)
		defer cancel()
		out <- statusLag(h.Status(ctx))
	}(l.pending)
	return l.last, l.known
}

// statusLag sums the partitions' lag when every partition tells its own.
func statusLag(st actors.Status, err error) lagAnswer {
	if err != nil {
		return lagAnswer{unanswered: true}
	}
	if len(st.Partitions) == 0 {
		return lagAnswer{}
	}
	var sum int64
	for _, p := range st.Partitions {
		if p.Lag == nil {
			return lagAnswer{}
		}
		sum += *p.Lag
	}
	return lagAnswer{behind: sum, known: true}
}
