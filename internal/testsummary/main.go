// Command testsummary reads `go test -json` on stdin and says what CI
// needs to know: each package's ok or FAIL line, the output of every
// failed test, every skipped test with its reason, and one last line
// "N passed, N failed, N skipped". It exits 1 when a test failed, a
// package failed (a build error, a panic outside a test), or a test
// skipped: CI runs with every server up, so a skip there means a test did
// not run. -allow-skip REASON lets through the skips whose reason contains
// REASON (the race run's "-short" skips of tests the full run has run).
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Elapsed    float64
	Output     string
}

// summary is what the events added up to.
type summary struct {
	passed, failed, skipped int
	failedPackages          []string
	skips                   []string // "pkg TestX: reason"
}

func main() {
	allowSkip := flag.String("allow-skip", "", "don't fail for skips whose reason contains this text")
	flag.Parse()
	s, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	os.Exit(s.report(os.Stdout, *allowSkip))
}

// summarize reads the events, printing package results and failed tests'
// output to w as they end.
func summarize(r io.Reader, w io.Writer) (summary, error) {
	var s summary
	outputs := map[string]*strings.Builder{} // by package and test
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// go test prints some errors (a package that does not
			// compile, with older toolchains) as plain text.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		pkg := e.Package
		if pkg == "" {
			pkg = e.ImportPath
		}
		key := pkg + " " + e.Test
		switch e.Action {
		case "output", "build-output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(e.Output)
			continue
		case "build-fail":
			s.failedPackages = append(s.failedPackages, pkg)
			fmt.Fprintf(w, "FAIL\t%s [build failed]\n%s", pkg, text(outputs[key]))
		case "pass", "fail", "skip":
			if e.Test == "" {
				s.packageDone(w, e, pkg, text(outputs[key]))
			} else {
				s.testDone(w, e, pkg, text(outputs[key]))
			}
		}
		delete(outputs, key)
	}
	return s, sc.Err()
}

func text(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}

func (s *summary) testDone(w io.Writer, e event, pkg, out string) {
	switch e.Action {
	case "pass":
		s.passed++
	case "fail":
		s.failed++
		fmt.Fprintf(w, "--- FAIL: %s %s (%.2fs)\n%s", pkg, e.Test, e.Elapsed, out)
	case "skip":
		s.skipped++
		s.skips = append(s.skips, fmt.Sprintf("%s %s: %s", pkg, e.Test, skipReason(out)))
	}
}

func (s *summary) packageDone(w io.Writer, e event, pkg, out string) {
	switch e.Action {
	case "pass":
		fmt.Fprintf(w, "ok\t%s\t%.1fs\n", pkg, e.Elapsed)
	case "skip":
		fmt.Fprintf(w, "?\t%s\t[no test files]\n", pkg)
	case "fail":
		s.failedPackages = append(s.failedPackages, pkg)
		fmt.Fprintf(w, "FAIL\t%s\t%.1fs\n%s", pkg, e.Elapsed, out)
	}
}

// skipReason is the message of t.Skip in a skipped test's output: its
// lines other than the === and --- markers, joined.
func skipReason(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	return strings.Join(lines, " ")
}

// report prints the skips and the summary line and returns the exit code;
// skips whose reason contains allowSkip (when not empty) are allowed.
func (s summary) report(w io.Writer, allowSkip string) int {
	sort.Strings(s.skips)
	for _, sk := range s.skips {
		fmt.Fprintf(w, "SKIP %s\n", sk)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	switch {
	case s.failed > 0 || len(s.failedPackages) > 0:
		if len(s.failedPackages) > 0 {
			fmt.Fprintf(w, "failed packages: %s\n", strings.Join(s.failedPackages, " "))
		}
		return 1
	}
	if bad := s.skipsNotAllowed(allowSkip); bad > 0 {
		fmt.Fprintf(w, "%d tests skipped: every test must run here\n", bad)
		return 1
	}
	return 0
}

// skipsNotAllowed counts the skips whose reason lacks allowed.
func (s summary) skipsNotAllowed(allowed string) int {
	n := 0
	for _, sk := range s.skips {
		if allowed == "" || !strings.Contains(sk, allowed) {
			n++
		}
	}
	return n
}
