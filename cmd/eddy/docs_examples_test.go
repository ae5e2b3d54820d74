package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// Every ```sh block of README.md and docs/*.md runs as written, line by
// line, each page's blocks in order in one fresh directory holding
// scripts/ and the page's Lua examples (`-- example: NAME` as NAME.lua), as
// a reader following the page would. A line ending in & starts in the
// background; the lines after it run once every background run serves its
// whole result table (clustered nodes: once each reads a partition of its
// own) and has counted the key a query names. Background runs are stopped
// with SIGINT at the end of their block. A block that stops working fails
// the test.
//
// What differs from the text, so that the test shares the machine with
// other runs, and nothing else:
//   - eddy is the test's build: `bin/eddy` and `go run ./cmd/eddy` name it,
//     and the lines `go build …` and `go test ./...` (this suite) are not run;
//   - /tmp/ is the page's directory; 127.0.0.1:8080 and --cluster-port N
//     are free ports;
//   - Kafka lines (`just kafka-up`, `source services/env.sh`, kafka://, eddy
//     topics) run against the test broker, every topic and consumer group
//     with a name of its own (a source without group= gets one), and the
//     topics are deleted at the end. Without a broker, a block's lines from
//     its first Kafka line on are skipped and the page is reported skipped,
//     naming `just kafka-up`, after its other lines ran.
//
// Synopses that cannot run as written (placeholders, other machines) are
// ```text blocks.
func TestDocExamples(t *testing.T) {
	scripts, err := filepath.Abs("../../scripts")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, page := range append([]string{"../../README.md"}, docs...) {
		md, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		blocks := shBlocks(string(md))
		if len(blocks) == 0 {
			continue
		}
		n += len(blocks)
		t.Run(filepath.Base(page), func(t *testing.T) {
			p := newDocPage(t, scripts, string(md))
			for i, block := range blocks {
				if block.script {
					p.runScript(i+1, block.text)
					continue
				}
				p.runBlock(i+1, block.text)
			}
			if p.skipped != "" {
				t.Skip(p.skipped)
			}
		})
	}
	if n < 8 {
		t.Fatalf("found %d ```sh blocks in README.md and docs/, want at least 8", n)
	}
}

var (
	shBlock    = regexp.MustCompile("(?s)(" + regexp.QuoteMeta(scriptMark) + "\n)?```sh\n(.*?)```")
	luaExample = regexp.MustCompile("(?s)```lua\n(-- example: (\\w+)\n.*?)```")
)

// scriptMark, on the line before a ```sh block, says the block is one
// shell script (its lines share variables, wait on what they start and
// clean up after themselves), to be run whole rather than line by line.
const scriptMark = "<!-- docs test: one script -->"

// scriptLimit bounds a whole-script block.
const scriptLimit = 5 * time.Minute

type shBlockText struct {
	text   string
	script bool // run whole with bash -e (scriptMark)
}

func shBlocks(md string) []shBlockText {
	var out []shBlockText
	for _, m := range shBlock.FindAllStringSubmatch(md, -1) {
		out = append(out, shBlockText{text: m[2], script: m[1] != ""})
	}
	return out
}

// runScript runs a block marked as one script with bash -e -o pipefail in
// the page's directory and environment, within scriptLimit; the script
// itself waits for what it starts and stops it. Its Kafka topics, if any,
// get the page's substitutions like a line's.
func (p *docPage) runScript(n int, block string) {
	t := p.t
	if p.brokers == nil && (strings.Contains(block, "kafka://") || strings.Contains(block, "eddy topics")) {
		t.Logf("block %d: skipped (no broker)", n)
		p.skipped = p.noKafka
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", p.rewrite(block))
	cmd.Dir, cmd.Env, cmd.WaitDelay = p.dir, p.env, 5*time.Second
	// Its own process group, so a timeout also ends what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	// bash -e leaves what the script started in the background running
	// when a line fails: end the whole group, whichever way it ended.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("block %d (one script): %v\n%s", n, err, out)
	}
}

// commands splits a block into its command lines: lines continued with a
// trailing \ are joined, blank and comment lines dropped.
func commands(block string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			cur += cont
			continue
		}
		l = cur + l
		cur = ""
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// docPage is one page's run: its directory, environment and substitutions,
// and the background runs of the block it runs.
type docPage struct {
	t       *testing.T
	dir     string
	env     []string
	brokers []string // nil without a test broker
	noKafka string   // then: why, with the recipe to run
	skipped string   // set once a line was skipped for want of Kafka
	suffix  string
	ports   map[string]string
	bg      []*bgRun
	settled bool
}

type bgRun struct {
	line string
	cmd  *exec.Cmd
	out  *lockedbuf.Buffer
	done chan struct{}
	http string // where it serves, once known
}

func newDocPage(t *testing.T, scripts, md string) *docPage {
	dir := t.TempDir()
	if err := os.Symlink(scripts, filepath.Join(dir, "scripts")); err != nil {
		t.Fatal(err)
	}
	for _, m := range luaExample.FindAllStringSubmatch(md, -1) {
		if err := os.WriteFile(filepath.Join(dir, m[2]+".lua"), []byte(m[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b [4]byte
	rand.Read(b[:])
	p := &docPage{t: t, dir: dir, suffix: "-doc" + hex.EncodeToString(b[:]), ports: map[string]string{}}
	runtime := t.TempDir()
	t.Setenv(statusapi.RuntimeDirEnv, runtime)
	p.env = append(os.Environ(), "PATH="+filepath.Dir(eddyBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		statusapi.RuntimeDirEnv+"="+runtime)
	if strings.Contains(md, "kafka://") || strings.Contains(md, "eddy topics") {
		note := &skipNote{TB: t}
		p.brokers = testenv.Kafka(note)
		p.noKafka = note.msg
		if p.brokers != nil {
			p.env = append(p.env, testenv.KafkaEnv+"="+strings.Join(p.brokers, ","))
			t.Cleanup(p.deleteTopics)
		}
	}
	t.Cleanup(p.stopBackground)
	return p
}

// skipNote keeps the message of a Skipf instead of skipping, so a page
// runs its lines that need no broker before it reports the skip.
type skipNote struct {
	testing.TB
	msg string
}

func (s *skipNote) Skipf(format string, args ...any) { s.msg = fmt.Sprintf(format, args...) }
func (s *skipNote) Helper()                          {}

// notRun are the commands (lines, or parts of one joined by &&) the test
// does not run, with what stands in for them.
var notRun = map[string]string{
	"just kafka-up":                   "the test broker",
	"source services/env.sh":          "the test broker",
	"go build -o bin/eddy ./cmd/eddy": "the test's build of eddy",
	"go test ./...":                   "this suite",
}

// runBlock runs block, the nth of the page, line by line, and stops the
// background runs it started at its end.
func (p *docPage) runBlock(n int, block string) {
	t := p.t
	defer p.stopBackground()
	for _, text := range commands(block) {
		line, kafka := p.leaveOut(n, text)
		if kafka && p.brokers == nil {
			t.Logf("block %d: skipped from here on (no broker): %s", n, text)
			p.skipped = p.noKafka
			return
		}
		if line == "" {
			continue
		}
		line = p.rewrite(line)
		if cmdline, ok := strings.CutSuffix(line, " &"); ok {
			p.start(cmdline)
			continue
		}
		p.settle()
		if key := queryKey(line); key != "" {
			p.waitPath("/state/" + url.PathEscape(key))
		}
		if out, err := runLine(p.dir, p.env, line); err != nil {
			t.Fatalf("block %d: %s: %v\n%s%s", n, line, err, out, p.backgroundLogs())
		}
	}
}

// leaveOut drops the commands of text that are not run (notRun) and its
// comment, and says whether it needs Kafka.
func (p *docPage) leaveOut(n int, text string) (line string, kafka bool) {
	var kept []string
	for _, seg := range strings.Split(text, " && ") {
		seg = strings.TrimSpace(strings.SplitN(seg, " #", 2)[0])
		if why, ok := notRun[seg]; ok {
			kafka = kafka || why == "the test broker"
			p.t.Logf("block %d: not run (%s): %s", n, why, seg)
			continue
		}
		kept = append(kept, seg)
	}
	line = strings.Join(kept, " && ")
	return line, kafka || strings.Contains(line, "kafka://") || strings.Contains(line, "eddy topics")
}

var (
	binEddy     = regexp.MustCompile(`(^|[\s;&|(])(bin/eddy|go run \./cmd/eddy)\b`)
	clusterPort = regexp.MustCompile(`--cluster-port (\d+)`)
	topicPrefix = regexp.MustCompile(`--topic-prefix ([a-z]+)-`)
	docTopic    = regexp.MustCompile(`(127\.0\.0\.1:9092/|topics create )([a-z]+)\b`)
	docGroup    = regexp.MustCompile(`group=([a-z_]+)\b`)
	kafkaSource = regexp.MustCompile(`--source (['"]?)(kafka://[^\s'"]+)`)
)

// rewrite makes the substitutions listed on TestDocExamples.
func (p *docPage) rewrite(line string) string {
	line = binEddy.ReplaceAllString(line, "${1}eddy")
	line = strings.ReplaceAll(line, "/tmp/", p.dir+"/")
	line = strings.ReplaceAll(line, "127.0.0.1:8080", p.port("127.0.0.1:8080"))
	line = clusterPort.ReplaceAllStringFunc(line, func(m string) string {
		_, port, _ := net.SplitHostPort(p.port(m))
		return "--cluster-port " + port
	})
	if p.brokers == nil {
		return line
	}
	line = docTopic.ReplaceAllString(line, "${1}${2}"+p.suffix)
	// topics create nexmark-bid became nexmark-SUFFIX-bid: the prefix too.
	line = topicPrefix.ReplaceAllString(line, "--topic-prefix ${1}"+p.suffix+"-")
	line = docGroup.ReplaceAllString(line, "group=${1}"+p.suffix)
	line = kafkaSource.ReplaceAllStringFunc(line, func(m string) string {
		if strings.Contains(m, "group=") {
			return m
		}
		sep := "?"
		if strings.Contains(m, "?") {
			sep = "&"
		}
		return m + sep + "group=eddy" + p.suffix
	})
	return strings.ReplaceAll(line, "127.0.0.1:9092", strings.Join(p.brokers, ","))
}

// port is the free address standing in for what the page writes as text;
// the same text gets the same address throughout the page.
func (p *docPage) port(text string) string {
	if a, ok := p.ports[text]; ok {
		return a
	}
	a := freeAddr(p.t)
	p.ports[text] = a
	return a
}

// settleLimit bounds the wait for the background runs to serve whole
// tables: a three-node group's rebalances took over a minute beside the
// rest of the suite in CI.
const settleLimit = 3 * time.Minute

// backgroundLimit bounds a background run: the block it belongs to ends
// long before.
const backgroundLimit = 5 * time.Minute

// start runs a background line. Only an eddy run the test can wait for (one
// that serves over HTTP or is clustered) may run in the background.
func (p *docPage) start(cmdline string) {
	t := p.t
	if !strings.HasPrefix(cmdline, "eddy run ") || !(strings.Contains(cmdline, "--http ") || strings.Contains(cmdline, "--cluster-port ") || strings.Contains(cmdline, "--peers ")) {
		t.Fatalf("a background line the test cannot wait for (only an eddy run with --http, --cluster-port or --peers): %s", cmdline)
	}
	ctx, cancel := context.WithTimeout(context.Background(), backgroundLimit)
	cmd := exec.CommandContext(ctx, "sh", "-c", "exec "+cmdline)
	cmd.Dir, cmd.Env, cmd.WaitDelay = p.dir, p.env, 5*time.Second
	out := &lockedbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	b := &bgRun{line: cmdline, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); cancel(); close(b.done) }()
	if m := httpFlag.FindStringSubmatch(cmdline); m != nil {
		b.http = m[1]
	}
	p.bg = append(p.bg, b)
	p.settled = false
}

// settle waits, before a line runs, until every background run serves its
// whole result table and, when several nodes of a cluster run, each reads
// a partition of its own (the group's rebalances are over), for at most a
// minute in all.
func (p *docPage) settle() {
	if p.settled || len(p.bg) == 0 {
		return
	}
	deadline := time.Now().Add(settleLimit)
	p.until(deadline, "registered", func() error {
		for _, b := range p.bg {
			if err := p.find(b); err != nil {
				return err
			}
		}
		return nil
	})
	p.until(deadline, "settled", func() error {
		for _, b := range p.bg {
			if _, err := statusapi.Fetch(context.Background(), b.http, "/state"); err != nil {
				return fmt.Errorf("%s: %w", b.http, err)
			}
			if len(p.bg) > 1 {
				if err := ownsPartition(b.http); err != nil {
					return err
				}
			}
		}
		return nil
	})
	p.settled = true
}

// find sets where b serves: its --http, else what it registered.
func (p *docPage) find(b *bgRun) error {
	select {
	case <-b.done:
		return fmt.Errorf("%s ended: %v", b.line, b.cmd.ProcessState)
	default:
	}
	if b.http != "" {
		return nil
	}
	entries, err := statusapi.Running("")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.PID == b.cmd.Process.Pid {
			b.http = e.HTTP
			return nil
		}
	}
	return fmt.Errorf("%s has not registered yet", b.line)
}

// ownsPartition says whether the node at addr reads a partition.
func ownsPartition(addr string) error {
	body, err := statusapi.Fetch(context.Background(), addr, "/status?local=1")
	if err != nil {
		return err
	}
	var s struct {
		Partitions []json.RawMessage `json:"partitions"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return err
	}
	if len(s.Partitions) == 0 {
		return fmt.Errorf("the node at %s reads no partition yet", addr)
	}
	return nil
}

// waitPath waits until the first background run answers path.
func (p *docPage) waitPath(path string) {
	if len(p.bg) == 0 {
		return
	}
	p.until(time.Now().Add(time.Minute), "answering "+path, func() error {
		_, err := statusapi.Fetch(context.Background(), p.bg[0].http, path)
		return err
	})
}

// until polls cond until it holds, failing the test at deadline.
func (p *docPage) until(deadline time.Time, what string, cond func() error) {
	p.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the background runs are not %s in time: %v%s", what, err, p.backgroundLogs())
		}
		<-tick.C
	}
}

func (p *docPage) backgroundLogs() string {
	var b strings.Builder
	for _, r := range p.bg {
		fmt.Fprintf(&b, "\nbackground %s:\n%s", r.line, tailOf(r.out))
	}
	return b.String()
}

// stopBackground stops the block's background runs together with SIGINT,
// as Ctrl-C would, and waits for them (killing any still running a minute
// later).
func (p *docPage) stopBackground() {
	for _, b := range p.bg {
		b.cmd.Process.Signal(syscall.SIGINT)
	}
	deadline := time.After(time.Minute)
	for _, b := range p.bg {
		select {
		case <-b.done:
		case <-deadline:
			for _, b := range p.bg {
				b.cmd.Process.Kill()
			}
			p.t.Errorf("background runs did not stop within a minute of SIGINT%s", p.backgroundLogs())
			p.bg = nil
			return
		}
	}
	p.bg = nil
}

// deleteTopics deletes the topics the page made: its own and the
// changelogs and checkpoint topics eddy made for them.
func (p *docPage) deleteTopics() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...))
	if err != nil {
		p.t.Logf("deleting the page's topics: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		p.t.Logf("deleting the page's topics: %v", err)
		return
	}
	var mine []string
	for _, name := range topics.Names() {
		if strings.Contains(name, p.suffix) {
			mine = append(mine, name)
		}
	}
	if len(mine) > 0 {
		if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
			p.t.Logf("deleting the page's topics %v: %v", mine, err)
		}
	}
}
