package connectors_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	_ "github.com/eddy-stream/eddy/connectors/all"
)

// Every URI a confined run opens is checked against the allowed
// directories, variables and hosts, whatever connector it names; a path is
// checked after its symlinks and ".." are resolved.
func TestConfinement(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{allowed, outside, filepath.Join(outside, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(allowed, "in.log"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// allowed/out is a way out; allowed/sub/.. is physically outside/.
	if err := os.Symlink(outside, filepath.Join(allowed, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "sub"), filepath.Join(allowed, "sub")); err != nil {
		t.Fatal(err)
	}
	restore, err := connectors.Confine(connectors.Confinement{
		Dirs:  []string{allowed},
		Env:   []string{"EDDY_TEST_API_KEY"},
		Hosts: []string{"api.example.org", "127.0.0.1:9092"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	for _, tc := range []struct {
		name, kind, uri, errContains string
	}{
		{"file source inside", "source", "file:" + filepath.Join(allowed, "in.log"), ""},
		{"dir source inside", "source", "dir:" + allowed, ""},
		{"new sink file inside", "sink", "file:" + filepath.Join(allowed, "new", "results.jsonl"), ""},
		{"file source outside", "source", "file:/etc/hostname", "path /etc/hostname is not allowed (--allow-path: " + allowed},
		{"file:/// outside", "source", "file:///etc/hostname", "path /etc/hostname is not allowed"},
		{"dir source outside", "source", "dir:" + outside, "path " + outside + " is not allowed"},
		{"sink outside", "sink", "file:" + filepath.Join(outside, "r.jsonl"), "path " + filepath.Join(outside, "r.jsonl") + " is not allowed"},
		{"dead letters up and out", "sink", "file:" + allowed + "/../outside/dead.jsonl", "is not allowed"},
		{"symlink escape", "sink", "file:" + filepath.Join(allowed, "out", "r.jsonl"), "path " + filepath.Join(allowed, "out", "r.jsonl") + " (" + filepath.Join(outside, "r.jsonl") + ") is not allowed"},
		{"symlink then ..", "sink", "file:" + allowed + "/sub/../r.jsonl", "(" + filepath.Join(outside, "r.jsonl") + ") is not allowed"},
		{"symlinked dir source", "source", "dir:" + filepath.Join(allowed, "out"), "is not allowed"},
		{"file parameter outside", "source", "kafka://127.0.0.1:9092/t?tls-ca=/etc/ssl/certs/ca-certificates.crt", "path /etc/ssl/certs/ca-certificates.crt is not allowed"},
		{"password file outside", "sink", "mysql://u@127.0.0.1:9092/db/t?password-file=/etc/passwd", "path /etc/passwd is not allowed"},
		{"allowed variable", "source", "https://api.example.org/data?key-env=EDDY_TEST_API_KEY&key-param=k", ""},
		{"variable", "source", "https://api.example.org/data?key-env=HOME&key-param=k", "environment variable HOME is not allowed (--allow-env: EDDY_TEST_API_KEY)"},
		{"host", "source", "http://evil.example.com/x", "host evil.example.com is not allowed (--allow-host: api.example.org, 127.0.0.1:9092)"},
		{"host with port", "source", "https://api.example.org:8443/data", ""},
		{"port not allowed", "sink", "kafka://127.0.0.1:9093/t", "host 127.0.0.1:9093 is not allowed"},
		{"one broker of two", "source", "kafka://127.0.0.1:9092,10.0.0.9:9092/t", "host 10.0.0.9:9092 is not allowed"},
		{"user@host", "sink", "mysql://root@db.example.com:3306/d/t", "host db.example.com:3306 is not allowed"},
		{"lookup", "lookup", "mysql://root@db.example.com:3306/d/t", "host db.example.com:3306 is not allowed"},
		{"stdout reaches nothing", "sink", "stdout", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := connectors.Check(tc.kind, tc.uri)
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("Check(%s, %q): %v", tc.kind, tc.uri, err)
			case tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)):
				t.Fatalf("Check(%s, %q) = %v, want an error containing %q", tc.kind, tc.uri, err, tc.errContains)
			}
		})
	}
	// Opening is refused the same way, before the connector runs.
	if _, err := connectors.OpenSource("file:/etc/hostname", nil); err == nil || !strings.Contains(err.Error(), "/etc/hostname is not allowed") {
		t.Fatalf("OpenSource outside the allowed paths: %v", err)
	}
	if _, err := connectors.OpenSink("file:" + filepath.Join(allowed, "out", "r.jsonl")); err == nil || !strings.Contains(err.Error(), "is not allowed") {
		t.Fatalf("OpenSink through a symlink out: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "r.jsonl")); err == nil {
		t.Fatal("the refused sink created its file outside the allowed directory")
	}
}

// Without a confinement (the default) every URI reaches what it names, and
// a confinement's directories must exist.
func TestConfinementOff(t *testing.T) {
	if err := connectors.Check("source", "file:/etc/hostname"); err != nil {
		t.Fatal(err)
	}
	if _, err := connectors.Confine(connectors.Confinement{Dirs: []string{"/nonexistent/eddy"}}); err == nil || !strings.Contains(err.Error(), "allowed path /nonexistent/eddy") {
		t.Fatalf("Confine with a missing directory: %v", err)
	}
	restore, err := connectors.Confine(connectors.Confinement{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	if err := connectors.Check("source", "file:/etc/hostname"); err != nil {
		t.Fatalf("a confinement of variables only confined paths: %v", err)
	}
	if err := connectors.Check("source", "https://h/x?key-env=PATH&key-param=k"); err == nil {
		t.Fatal("an empty --allow-env list allowed a variable")
	}
}
