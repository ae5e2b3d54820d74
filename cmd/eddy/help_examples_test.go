package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// Every example in the commands' --help runs as written, line by line in a
// shell of its own, in a fresh directory holding scripts/: a line ending
// in & starts in the background (and is stopped with SIGINT at the end),
// and the lines after it run once the background run serves its whole
// result table (and has counted the key a query line asks for). Examples with kafka:// run against the
// test broker (and are skipped with a message without one). Two things
// differ from the text, both to share the machine with other runs: the
// --http port 8080 is a free port, and each Kafka topic gets a name of its
// own (created first unless the example creates it).
func TestHelpExamples(t *testing.T) {
	scripts, err := filepath.Abs("../../scripts")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(*cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Example != "" {
			n++
			t.Run(strings.ReplaceAll(c.CommandPath(), " ", "_"), func(t *testing.T) {
				runExample(t, scripts, c.Example)
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root())
	if n < 8 {
		t.Fatalf("found %d commands with examples, want at least 8", n)
	}
}

var (
	kafkaTopic  = regexp.MustCompile(`127\.0\.0\.1:9092/([a-z]+)`)
	createTopic = regexp.MustCompile(`topics create ([a-z]+)`)
)

// exampleLines splits an example into the commands it shows: a line that
// starts with # (after indentation) continues the one before as a comment.
func exampleLines(example string) []string {
	var lines []string
	for _, l := range strings.Split(example, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func runExample(t *testing.T, scripts, example string) {
	dir := t.TempDir()
	if err := os.Symlink(scripts, filepath.Join(dir, "scripts")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+filepath.Dir(eddyBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		statusapi.RuntimeDirEnv+"="+t.TempDir())
	example = strings.ReplaceAll(example, "127.0.0.1:8080", freeAddr(t))
	if strings.Contains(example, "kafka://") || strings.Contains(example, "eddy topics") {
		example = onTestKafka(t, example)
	}
	var background []*exec.Cmd
	// node is the --http address of the background run, nodeLog its output.
	var node string
	var nodeLog *lockedbuf.Buffer
	defer func() { stopBackground(t, background) }()
	for _, line := range exampleLines(example) {
		if strings.Contains(line, "EDDY_KAFKA_SCRAM") && os.Getenv("EDDY_KAFKA_SCRAM_PASSWORD") == "" {
			t.Logf("skipped (needs the secured broker: just kafka-up, then source services/env.sh): %s", line)
			continue
		}
		if cmdline, ok := strings.CutSuffix(line, " &"); ok {
			cmd := exec.Command("sh", "-c", "exec "+cmdline)
			cmd.Dir, cmd.Env = dir, env
			out := &lockedbuf.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			background = append(background, cmd)
			defer func() {
				if t.Failed() {
					t.Logf("background %s:\n%s", cmdline, tailOf(out))
				}
			}()
			// The lines after it ask the node: wait until it serves a whole
			// result table.
			if m := httpFlag.FindStringSubmatch(cmdline); m != nil {
				node, nodeLog = m[1], out
				waitState(t, node, "/state", nodeLog)
			}
			continue
		}
		if key := queryKey(line); key != "" && node != "" {
			// A query of one key needs the key counted first.
			waitState(t, node, "/state/"+url.PathEscape(key), nodeLog)
		}
		if out, err := runLine(dir, env, line); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	stopBackground(t, background)
	background = nil
}

// exampleLimit bounds one line of an example: each is meant to end on its
// own within seconds.
const exampleLimit = time.Minute

// runLine runs one line with sh, within exampleLimit.
func runLine(dir string, env []string, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), exampleLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 5*time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// httpFlag finds a background example's --http address.
var httpFlag = regexp.MustCompile(`--http (\S+)`)

// waitState waits until the node at addr answers path (/state, or
// /state/KEY) with a whole answer, not 503 while it starts or 404 for a key
// not counted yet, for at most a minute.
func waitState(t *testing.T, addr, path string, log *lockedbuf.Buffer) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		_, err := statusapi.Fetch(context.Background(), addr, path)
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the node at %s does not answer %s within a minute: %v\n%s", addr, path, err, tailOf(log))
		}
	}
}

// queryKey is the key an `eddy query` example line asks for, "" when it
// asks for the whole table: the last argument when two are given
// (PIPELINE KEY), or the one given with --http.
func queryKey(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "eddy" || f[1] != "query" {
		return ""
	}
	var args []string
	http := false
	for i := 2; i < len(f); i++ {
		if f[i] == "--http" {
			http, i = true, i+1
			continue
		}
		args = append(args, f[i])
	}
	switch {
	case len(args) == 2:
		return args[1]
	case len(args) == 1 && http:
		return args[0]
	}
	return ""
}

// stopBackground stops the example's background runs with SIGINT, as
// Ctrl-C would, and waits for them.
func stopBackground(t *testing.T, cmds []*exec.Cmd) {
	for _, cmd := range cmds {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("a background example did not stop within 30s of SIGINT")
		}
	}
}

// onTestKafka points an example at the test broker, each topic renamed to
// one of its own, created unless the example creates it.
func onTestKafka(t *testing.T, example string) string {
	brokers := testenv.Kafka(t)
	suffix := fmt.Sprintf("-ex%d", time.Now().UnixNano())
	created := map[string]bool{}
	for _, m := range createTopic.FindAllStringSubmatch(example, -1) {
		created[m[1]] = true
	}
	for _, m := range kafkaTopic.FindAllStringSubmatch(example, -1) {
		if !created[m[1]] {
			created[m[1]] = true
			name := m[1] + suffix
			_, stderr, err := eddy(t, "topics", "create", name, "--partitions", "1", "--brokers", strings.Join(brokers, ","))
			if err != nil {
				t.Fatalf("creating %s: %v\n%s", name, err, stderr)
			}
			t.Cleanup(func() { eddy(t, "topics", "delete", name, "--brokers", strings.Join(brokers, ",")) })
		}
	}
	example = kafkaTopic.ReplaceAllString(example, "127.0.0.1:9092/${1}"+suffix)
	example = createTopic.ReplaceAllString(example, "topics create ${1}"+suffix)
	return strings.ReplaceAll(example, "127.0.0.1:9092", strings.Join(brokers, ","))
}
