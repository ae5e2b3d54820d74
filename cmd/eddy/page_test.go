package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
	browser := chromium()
	if browser == "" {
		t.Skip("no chromium binary found (PATH, or $EDDY_CHROMIUM): install it with apt-get install -y chromium")
	}
	addr := freeAddr(t)
	run := exec.Command(eddyBin, "run", netflowScript, "--source", "gen:netflow?count=100000000", "--http", addr)
	var stderr lockedBuffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = run.Wait(); close(exited) }()
	t.Cleanup(func() {
		run.Process.Kill()
		<-exited
	})

	// The page shows a starting node's 503s as notices, but Chromium logs
	// each as an error: open it once the node answers.
	waitServing(t, addr, &stderr)
	ctx := newBrowser(t, browser)
	var mu sync.Mutex
	var consoleErrors []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				consoleErrors = append(consoleErrors, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("open the page: %v\n%s", err, stderr.String())
	}
	shows := `document.getElementById("pipeline-name").textContent === "netflow_webservers" &&
		document.querySelector("#partitions tbody").textContent.includes("gen:netflow") &&
		document.querySelector("#pipeline").textContent.includes("gen:netflow?count=100000000")`
	waitFor(t, ctx, shows, "the page to show the pipeline, its source and its partition", &stderr)
	read := func() int64 {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int64](recordsRead))
		if err != nil {
			t.Fatalf("read the records count: %v", err)
		}
		return n
	}
	first := read()
	waitFor(t, ctx, recordsRead+" > "+itoa(first), "the records count to move past "+itoa(first), &stderr)
	waitFor(t, ctx, `document.querySelectorAll("#results tbody tr").length > 0 && document.querySelectorAll("#checkpoints tbody td.num").length > 0`,
		"the result table and a checkpoint", &stderr)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
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
	mu.Lock()
	if len(consoleErrors) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(consoleErrors, "\n"))
	}
	mu.Unlock()

	run.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("eddy after SIGTERM: %v\n%s", exitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("eddy still runs 30s after SIGTERM\n%s", stderr.String())
	}
}

// recordsRead is the records count the page shows.
const recordsRead = `Number(document.getElementById("records-read").textContent.replace(/[^0-9]/g, "") || "-1")`

// lockedBuffer is eddy's stderr, written by exec's copier while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitServing waits, for at most a minute, until eddy at addr answers
// /status.
func waitServing(t *testing.T, addr string, stderr *lockedBuffer) {
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

// waitFor polls the page until the JavaScript condition holds, for at most
// a minute.
func waitFor(t *testing.T, ctx context.Context, cond, what string, stderr *lockedBuffer) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Minute), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage:\n%s\neddy:\n%s", what, err, body, stderr.String())
	}
}
