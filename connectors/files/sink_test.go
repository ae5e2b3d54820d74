package files_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
)

func openSink(uri string) func(t *testing.T) connectors.Sink {
	return func(t *testing.T) connectors.Sink {
		t.Helper()
		s, err := connectors.OpenSink(uri)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// readJSONL decodes JSON lines into rows, keeping field order.
func readJSONL(path string) func(t *testing.T) []connectors.Row {
	return func(t *testing.T) []connectors.Row {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rows []connectors.Row
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			d := json.NewDecoder(strings.NewReader(line))
			d.UseNumber()
			var r connectors.Row
			if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
				t.Fatalf("line %q is not an object", line)
			}
			for d.More() {
				k, _ := d.Token()
				var v any
				if err := d.Decode(&v); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				if n, ok := v.(json.Number); ok {
					if i, err := n.Int64(); err == nil {
						v = i
					} else {
						v, _ = n.Float64()
					}
				}
				r.Fields = append(r.Fields, connectors.Field{Name: k.(string), Value: v})
			}
			rows = append(rows, r)
		}
		return rows
	}
}

func readCSV(path string) func(t *testing.T) []connectors.Row {
	return func(t *testing.T) []connectors.Row {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var rows []connectors.Row
		for _, rec := range recs[1:] {
			var r connectors.Row
			for i, name := range recs[0] {
				r.Fields = append(r.Fields, connectors.Field{Name: name, Value: rec[i]})
			}
			rows = append(rows, r)
		}
		return rows
	}
}

func TestSinkConformance(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"out.jsonl", "out.json"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			connectortest.TestSink(t, openSink("file:"+path), readJSONL(path), connectortest.SinkOptions{})
		})
	}
	t.Run("out.csv", func(t *testing.T) {
		path := filepath.Join(dir, "out.csv")
		connectortest.TestSink(t, openSink("file:"+path), readCSV(path), connectortest.SinkOptions{})
	})
}

func TestSinkAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "top.csv")
	ctx := context.Background()
	row := func(dev string, n int64) connectors.Row {
		return connectors.Row{Fields: []connectors.Field{{Name: "dstdevice", Value: dev}, {Name: "count", Value: n}}}
	}
	s := openSink("file:" + path)(t)
	if err := s.Write(ctx, []connectors.Row{row("a", 1)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A second run appends below the header it finds, mapping by name.
	s = openSink("file:" + path)(t)
	reordered := connectors.Row{Fields: []connectors.Field{{Name: "count", Value: 2.0}, {Name: "dstdevice", Value: "b"}}}
	partial := connectors.Row{Fields: []connectors.Field{{Name: "count", Value: nil}}}
	if err := s.Write(ctx, []connectors.Row{reordered, partial}); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, []connectors.Row{{Fields: []connectors.Field{{Name: "extra", Value: "x"}}}})
	if err == nil || !strings.Contains(err.Error(), `field "extra" is not a column of the header (dstdevice, count)`) {
		t.Fatalf("extra field: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, nil); err == nil {
		t.Error("Write after Close succeeded")
	}
	data, _ := os.ReadFile(path)
	if want := "dstdevice,count\na,1\nb,2\n,\n"; string(data) != want {
		t.Fatalf("file is\n%s\nwant\n%s", data, want)
	}

	jpath := filepath.Join(t.TempDir(), "top.jsonl")
	for range 2 {
		s := openSink("file:" + jpath)(t)
		s.Write(ctx, []connectors.Row{row("a", 1)})
		s.Close()
	}
	data, _ = os.ReadFile(jpath)
	if want := "{\"dstdevice\":\"a\",\"count\":1}\n{\"dstdevice\":\"a\",\"count\":1}\n"; string(data) != want {
		t.Fatalf("file is\n%s\nwant\n%s", data, want)
	}
}

func TestSinkFlushWritesThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	s := openSink("file:" + path)(t)
	defer s.Close()
	ctx := context.Background()
	s.Write(ctx, []connectors.Row{{Fields: []connectors.Field{{Name: "n", Value: int64(1)}}}})
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Fatalf("written before Flush: %q", data)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); !bytes.Equal(data, []byte("{\"n\":1}\n")) {
		t.Fatalf("after Flush: %q", data)
	}
}

func TestSinkErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.csv"), []byte("a,\"b\n"), 0o644)
	tests := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"unknown extension", "file:" + dir + "/out.txt", `unknown extension ".txt": use one of .jsonl, .json, .csv`},
		{"no extension", "file:" + dir + "/out", `unknown extension ""`},
		{"broken header", "file:" + dir + "/broken.csv", "read the existing header"},
		{"no path", "file:", "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.OpenSink(tt.uri)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
}

// A file sink makes missing directories only for a relative path below the
// working directory; elsewhere the directory must exist (issue 12: a typo
// in --sink file:/nonexistent-dir/x.jsonl made directories at /).
func TestSinkParentDirs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name, uri   string
		made        string // a directory the sink made, "" when none
		errContains string
	}{
		{"relative, below the working directory", "file:nested/deeper/out.jsonl", "nested/deeper", ""},
		{"absolute, directory exists", "file:" + dir + "/out.jsonl", "", ""},
		{"absolute, directory missing", "file:" + dir + "/missing/out.jsonl", "",
			"directory " + dir + "/missing does not exist: create it first"},
		{"relative, leaving the working directory", "file:../eddy-sink-escape/out.jsonl", "",
			"directory ../eddy-sink-escape does not exist"},
		{"parent is a file", "file:out.jsonl/x.jsonl", "", "out.jsonl is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := connectors.OpenSink(tt.uri)
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
				}
				if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
					t.Fatal("the refused sink made its directory")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if tt.made != "" {
				if st, err := os.Stat(tt.made); err != nil || !st.IsDir() {
					t.Fatalf("directory %s not made: %v", tt.made, err)
				}
			}
		})
	}
}
