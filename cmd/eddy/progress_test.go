package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/creack/pty"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/testenv"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     progress
		want  string
		lacks string
	}{
		{"known total", progress{read: 927168, total: 1000000, rate: 489588, elapsed: 2500 * time.Millisecond, checkpoints: 3},
			"⠋ 927,168 of 1,000,000 records (92%) · 489.6k rec/s · 2s · failed 0 · checkpoints 3", ""},
		{"unknown total", progress{frame: 2, read: 5, rate: 2.5}, "⠹ 5 records · 2.5 rec/s · 0s · failed 0 · checkpoints 0", "/-"},
		{"idle", progress{read: 10, total: 10}, "⠋ 10 of 10 records (100%) · idle · 0s · failed 0 · checkpoints 0", "rec/hr"},
		{"millions", progress{read: 5e6, rate: 2.5e6, failed: 1200}, "⠋ 5,000,000 records · 2.50M rec/s · 0s · failed 1,200 · checkpoints 0", ""},
		{"hundreds", progress{read: 500, rate: 420.4}, "⠋ 500 records · 420 rec/s · 0s · failed 0 · checkpoints 0", ""},
		{"files", progress{read: 927168, rate: 489588, extent: connectors.Extent{FilesDone: 3, FilesFound: 8, BytesRead: 120 << 20, BytesFound: 340 << 20}},
			"⠋ 927,168 records · 3 of 8 files done, 120 MiB of 340 MiB (35%) · 489.6k rec/s · 0s · failed 0 · checkpoints 0", "/-"},
		{"empty files", progress{extent: connectors.Extent{FilesDone: 1, FilesFound: 1}},
			"⠋ 0 records · 1 of 1 files done, 0 B of 0 B · idle · 0s · failed 0 · checkpoints 0", "%"},
		{"kafka behind", progress{read: 750, rate: 100, behind: 250, lagKnown: true},
			"⠋ 750 records · 250 behind · 100 rec/s · 0s · failed 0 · checkpoints 0", ""},
		{"kafka caught up", progress{read: 750, lagKnown: true},
			"⠋ 750 records · caught up · idle · 0s · failed 0 · checkpoints 0", "%"},
		{"restoring", progress{read: 1, rate: 1, restoring: 2, restoreDone: 1000, restoreTotal: 5000},
			"⠋ 1 records · 1.0 rec/s · 0s · failed 0 · checkpoints 0 · restoring 2 partition(s): 1,000 of 5,000 changes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := progressLine(tc.p)
			if got != tc.want {
				t.Fatalf("progressLine = %q, want %q", got, tc.want)
			}
			if tc.lacks != "" && strings.Contains(got, tc.lacks) {
				t.Fatalf("progressLine = %q has %q", got, tc.lacks)
			}
		})
	}
}

func TestInputTotal(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		resumed bool
		want    int64
	}{
		{"gen:netflow?count=1000", false, 1000},
		{"gen:netflow?count=1000", true, 0},
		{"gen:netflow", false, 0},
		{"dir:flows", false, 0},
	} {
		if got := inputTotal(tc.uri, tc.resumed); got != tc.want {
			t.Errorf("inputTotal(%q, resumed %v) = %d, want %d", tc.uri, tc.resumed, got, tc.want)
		}
	}
}

// A console on one terminal: what goes to stdout or stderr first erases
// the progress line; piped stdout does not touch it.
func TestConsole(t *testing.T) {
	for _, tc := range []struct {
		name           string
		outTTY, errTTY bool
		want           string
	}{
		{"both terminals", true, true, eraseLine + "⠋ 1 records" + eraseLine + "row\n" + "log\n" + eraseLine + "⠙ 2 records" + eraseLine},
		{"stdout piped", false, true, eraseLine + "⠋ 1 records" + "row\n" + eraseLine + "log\n" + eraseLine + "⠙ 2 records" + eraseLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var screen bytes.Buffer
			c := newConsole(&screen, &screen, tc.outTTY, tc.errTTY, func() int { return 80 })
			c.draw("⠋ 1 records")
			io.WriteString(c.Stdout(), "row\n")
			io.WriteString(c.Stderr(), "log\n")
			c.draw("⠙ 2 records")
			c.erase()
			if got := screen.String(); got != tc.want {
				t.Fatalf("screen got %q, want %q", got, tc.want)
			}
		})
	}
	var screen bytes.Buffer
	c := newConsole(&screen, &screen, true, true, func() int { return 10 })
	c.draw("0123456789abc")
	if got := screen.String(); got != eraseLine+"012345678" {
		t.Fatalf("a line wider than the terminal: got %q, want it cut to 9 runes", got)
	}
}

// render plays terminal output onto lines as a terminal shows them:
// \r returns to the line's start, ESC[K erases to its end, \n ends it.
func render(out []byte) []string {
	var lines []string
	var line []rune
	col := 0
	s := []rune(string(out))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\n':
			lines = append(lines, string(line))
			line, col = nil, 0
		case s[i] == '\r':
			col = 0
		case s[i] == '\x1b' && i+2 < len(s) && s[i+1] == '[' && s[i+2] == 'K':
			line = line[:col]
			i += 2
		default:
			if col < len(line) {
				line[col] = s[i]
			} else {
				line = append(line, s[i])
			}
			col++
		}
	}
	return append(lines, string(line))
}

// On a terminal, the progress line shows while eddy runs and every result
// and log line gets a line of its own; nothing of the progress line is
// left when the run ends.
func TestProgressOnATerminal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd, out, copied := onTerminal(t, ctx, 200, "run", netflowScript, "--source", "gen:netflow?count=2500&rate=1000",
		"--emit", "update", "--trigger-interval", "400ms")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("eddy run: %v\n%s", err, out.String())
	}
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output did not end after eddy exited")
	}
	if !strings.Contains(out.String(), "of 2,500 records (") || !strings.Contains(out.String(), "rec/s") {
		t.Fatalf("no progress line on the terminal:\n%q", out.String())
	}
	results := 0
	for _, line := range render([]byte(out.String())) {
		if strings.Contains(line, "records") && strings.Contains(line, " · ") {
			t.Errorf("the progress line is left on the screen: %q", line)
		}
		if i := strings.Index(line, `{"`); i > 0 {
			t.Errorf("a result shares its line: %q", line)
		} else if i == 0 {
			results++
		}
	}
	if results == 0 {
		t.Fatalf("no results on the terminal:\n%s", strings.Join(render([]byte(out.String())), "\n"))
	}
}

// With stderr not a terminal there is no progress line at all.
func TestNoProgressWhenPiped(t *testing.T) {
	_, stderr, err := eddy(t, "run", netflowScript, "--source", "gen:netflow?count=600&rate=1000", "--emit", "final")
	if err != nil {
		t.Fatalf("eddy run: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "rec/s") || strings.Contains(stderr, eraseLine) {
		t.Fatalf("progress on a piped stderr:\n%q", stderr)
	}
}

// On a terminal, a dir: source's progress shows its files and bytes done
// of those found: a run that has read every file of a directory shows all
// of them done, their sizes as the files have them.
func TestProgressShowsFilesOfADir(t *testing.T) {
	dir := genFlows(t, 3000, 4, 0)
	files, err := os.ReadDir(dir)
	if err != nil || len(files) != 4 {
		t.Fatalf("the generated directory holds %d files, want 4: %v", len(files), err)
	}
	var bytes int64
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		bytes += st.Size()
	}
	want := fmt.Sprintf("3,000 records · 4 of 4 files done, %s of %s (100%%)", humanize.IBytes(uint64(bytes)), humanize.IBytes(uint64(bytes)))
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	// Without --until-idle the run goes on watching the directory, so the
	// progress line is drawn until the test has seen it.
	cmd, out, _ := onTerminal(t, ctx, 250, "run", netflowScript, "--source", "dir:"+dir, "--emit", "final")
	stopOnceShown(t, cmd, out, want)
}

func TestStatusLag(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name string
		st   actors.Status
		err  error
		want lagAnswer
	}{
		{"every partition tells", actors.Status{Partitions: []actors.PartitionStatus{{Lag: lag(3)}, {Lag: lag(4)}}}, nil, lagAnswer{behind: 7, known: true}},
		{"one does not", actors.Status{Partitions: []actors.PartitionStatus{{Lag: lag(3)}, {}}}, nil, lagAnswer{}},
		{"no partitions yet", actors.Status{}, nil, lagAnswer{}},
		{"no answer", actors.Status{}, errors.New("status: timeout"), lagAnswer{unanswered: true}},
	} {
		if got := statusLag(tc.st, tc.err); got != tc.want {
			t.Errorf("%s: statusLag = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// On a terminal, a Kafka source's progress line says how far it is behind
// its partitions' ends, and "caught up" once it has read them.
func TestProgressShowsKafkaLag(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	lines := readLines(t, genFlows(t, 2000, 1, 0))
	testenv.Produce(t, brokers, topic, lines)
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd, out, _ := onTerminal(t, ctx, 200, "run", netflowScript, "--source",
		"kafka://"+strings.Join(brokers, ",")+"/"+topic+"?group="+topic+"-g", "--changelog=false",
		"--state", filepath.Join(t.TempDir(), "state"), "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"))
	stopOnceShown(t, cmd, out, fmt.Sprintf("%s records · caught up", humanize.Comma(int64(len(lines)))))
}

// onTerminal starts eddy with args, its stdout and stderr a terminal of
// cols columns; what it writes there gathers in the buffer, and the channel
// closes once eddy has exited and all of it is read.
func onTerminal(t *testing.T, ctx context.Context, cols uint16, args ...string) (*exec.Cmd, *lockedbuf.Buffer, <-chan struct{}) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	out := &lockedbuf.Buffer{}
	copied := make(chan struct{})
	go func() { io.Copy(out, ptmx); close(copied) }() // ends with EIO once eddy exits
	return cmd, out, copied
}

// stopOnceShown waits up to a minute for want on the terminal, then stops
// eddy with SIGINT and waits for it to exit cleanly.
func stopOnceShown(t *testing.T, cmd *exec.Cmd, out *lockedbuf.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(out.String(), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no %q on the terminal within a minute:\n%q", want, tailOf(out))
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("eddy run after SIGINT: %v\n%q", err, tailOf(out))
	}
}

// A status query that fails (a busy engine) keeps the last lag shown; an
// answer replaces it.
func TestLagProbeKeepsTheLastAnswer(t *testing.T) {
	l := &lagProbe{last: 5, known: true}
	for _, tc := range []struct {
		answer lagAnswer
		want   int64
	}{
		{lagAnswer{unanswered: true}, 5},
		{lagAnswer{behind: 3, known: true}, 3},
	} {
		l.pending = make(chan lagAnswer, 1)
		l.pending <- tc.answer
		if got, known := l.behind(time.Now()); got != tc.want || !known {
			t.Errorf("after %+v: behind = %d, %v; want %d, true", tc.answer, got, known, tc.want)
		}
	}
}
