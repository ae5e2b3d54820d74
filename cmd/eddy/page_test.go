package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/statusapi"
)

// chromium finds a Chromium or Chrome binary, "" when there is none.
func chromium() string {
	if p := os.Getenv("EDDY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// The web page at / in a real headless Chromium: it shows the pipeline
// and its partitions, its records count moves, and its script logs no
// error. The screenshot goes to $EDDY_PAGE_SCREENSHOT when set (docs/img).
func TestWebPage(t *testing.T) {
	browser := needChromium(t)
	p := openPage(t, browser, netflowScript, "--source", "gen:netflow?count=100000000")
	shows := `document.getElementById("pipeline-name").textContent === "netflow_webservers" &&
		document.querySelector("#partitions tbody").textContent.includes("gen:netflow") &&
		document.querySelector("#pipeline").textContent.includes("gen:netflow?count=100000000")`
	p.waitFor(shows, "the page to show the pipeline, its source and its partition")
	read := func() int64 {
		n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int64](recordsRead))
		if err != nil {
			t.Fatalf("read the records count: %v", err)
		}
		return n
	}
	first := read()
	p.waitFor(recordsRead+" > "+strconv.FormatInt(first, 10), "the records count to move past "+strconv.FormatInt(first, 10))
	p.waitFor(`document.querySelectorAll("#results tbody tr").length > 0 && document.querySelectorAll("#checkpoints tbody td.num").length > 0`,
		"the result table and a checkpoint")
	shot, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := os.Getenv("EDDY_PAGE_SCREENSHOT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "page.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (records read went from %d to %d)", path, first, read())
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	p.stop()
}

// A node's answer other than 200 shows as its message where the data
// would be, and the rest of the page goes on: a pipeline without an
// aggregate has no result table (/state answers 404).
func TestWebPageShowsAnErrorAnswer(t *testing.T) {
	browser := needChromium(t)
	script := filepath.Join(t.TempDir(), "passthrough.lua")
	if err := os.WriteFile(script, []byte(`return { name = "passthrough", parse = eddy.json { dstdevice = "string" } }`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := openPage(t, browser, script, "--source", "gen:netflow?count=100000000&rate=2000",
		"--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"))
	p.waitFor(`!document.getElementById("results-error").hidden &&
		document.getElementById("results-error").textContent.includes("keeps no result table") &&
		document.querySelector("#partitions tbody").textContent.includes("gen:netflow")`,
		"the result table's place to say the pipeline keeps none, beside its partitions")
	first, err := chromedp.Run(p.ctx, chromedp.Evaluate[int64](recordsRead))
	if err != nil {
		t.Fatal(err)
	}
	p.waitFor(recordsRead+" > "+strconv.FormatInt(first, 10), "the records count to move on after the 404")
	for _, e := range p.consoleErrors() {
		// Chromium logs every answer other than 200; only /state's is expected.
		if !strings.HasSuffix(e, "/state)") {
			t.Errorf("the page logged an error: %s", e)
		}
	}
	p.stop()
}

// The page shows the version of the script running and its reloads: one
// that took over (--watch), then one refused with its reason.
func TestWebPageShowsReloads(t *testing.T) {
	browser := needChromium(t)
	src, err := os.ReadFile(netflowScript)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "nf.lua")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	p := openPage(t, browser, script, "--source", "gen:netflow?count=100000000", "--watch")
	const version = `document.getElementById("script-version").textContent`
	p.waitFor(version+`.includes("0 reloads, 0 refused")`, "the page to show the script's version, not reloaded yet")
	// The same pipeline in a new version (a comment more) takes over.
	if err := os.WriteFile(script, append(src, "-- version 2\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitFor(version+`.includes("1 reload, 0 refused")`, "the page to show the reload")
	if err := os.WriteFile(script, append(src, "this is not lua\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitFor(version+`.includes("1 reload, 1 refused") && `+version+`.includes("last refused: nf.lua: syntax error")`,
		"the page to show the refused version and why")
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	p.stop()
}

func needChromium(t *testing.T) string {
	t.Helper()
	browser := chromium()
	if browser == "" {
		t.Skip("no chromium binary found (PATH, or $EDDY_CHROMIUM): install it with apt-get install -y chromium")
	}
	return browser
}

// page is eddy run --http with its page open in a headless Chromium.
type page struct {
	t      *testing.T
	ctx    context.Context
	stderr *lockedbuf.Buffer
	run    *exec.Cmd
	exited chan struct{}
	err    error // eddy's exit, once exited is closed

	mu     sync.Mutex
	errors []string // the console's errors and exceptions
}

// openPage starts eddy run SCRIPT ARGS… --http on a free port and opens
// its page once it answers; the test's end kills what is left of both.
func openPage(t *testing.T, browser, script string, args ...string) *page {
	t.Helper()
	addr := freeAddr(t)
	p := &page{t: t, stderr: &lockedbuf.Buffer{}, exited: make(chan struct{})}
	p.run = exec.Command(eddyBin, append(append([]string{"run", script}, args...), "--http", addr)...)
	p.run.Stderr = p.stderr
	if err := p.run.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.run.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.run.Process.Kill()
		<-p.exited
	})
	// The page shows a starting node's 503s as notices, but Chromium logs
	// each as an error: open it once the node answers.
	waitServing(t, addr, p.stderr)
	p.ctx = newBrowser(t, browser)
	messages := chromedp.Console(p.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.errors = append(p.errors, m.String()+" ("+m.URL+")")
				p.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(p.ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("open the page: %v\n%s", err, p.stderr.String())
	}
	return p
}

func (p *page) consoleErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// waitFor polls the page until the JavaScript condition holds, for at most
// a minute.
func (p *page) waitFor(cond, what string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Minute), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		p.t.Fatalf("waiting for %s: %v\npage:\n%s\neddy:\n%s", what, err, body, p.stderr.String())
	}
}

// stop sends eddy SIGTERM and checks it ends cleanly within 30s.
func (p *page) stop() {
	p.t.Helper()
	p.run.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Errorf("eddy after SIGTERM: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("eddy still runs 30s after SIGTERM\n%s", p.stderr.String())
	}
}

// recordsRead is the records count the page shows.
const recordsRead = `Number(document.getElementById("records-read").textContent.replace(/[^0-9]/g, "") || "-1")`

// waitServing waits, for at most a minute, until eddy at addr answers
// /status.
func waitServing(t *testing.T, addr string, stderr *lockedbuf.Buffer) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for {
		if _, err := statusapi.Fetch(context.Background(), addr, "/status"); err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("eddy at %s does not answer /status within a minute\n%s", addr, stderr.String())
		}
	}
}

// newBrowser starts a headless Chromium for the test; it ends with it.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}
