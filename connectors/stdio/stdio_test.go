package stdio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/stdio"
)

func input() string {
	var b strings.Builder
	for i := 1; i <= 3000; i++ {
		b.WriteString("line " + strconv.Itoa(i) + "\n")
		if i%500 == 0 {
			b.WriteString("\r\n")
		}
	}
	return b.String() + "last"
}

func TestStdinConformance(t *testing.T) {
	in := input()
	// A restart is given the same input again, as the docs require.
	connectortest.TestSource(t, func(t *testing.T) connectors.Source {
		return stdio.NewStdin(strings.NewReader(in))
	}, connectortest.SourceOptions{})
}

func TestStdinLines(t *testing.T) {
	l := connectortest.Start(t, stdio.NewStdin(strings.NewReader("a\n\nb\r\nc")))
	res := connectortest.ReadAll(t, l.Partitions()[0], 0, 0)
	var got []string
	for _, r := range res.Records() {
		got = append(got, r.Locate+"="+string(r.Value))
	}
	if strings.Join(got, ",") != "stdin line 1=a,stdin line 3=b,stdin line 4=c" || !res.Ended {
		t.Fatalf("got %v, ended %v", got, res.Ended)
	}
}

// TestStdinDoesNotWaitForFullBatch: lines typed one at a time arrive one
// at a time.
func TestStdinDoesNotWaitForFullBatch(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	l := connectortest.Start(t, stdio.NewStdin(pr))
	p := l.Partitions()[0]
	for i := range 3 {
		go pw.Write([]byte("typed " + strconv.Itoa(i) + "\n"))
		b, err := p.Read(context.Background())
		if err != nil || len(b.Records) != 1 || string(b.Records[0].Value) != "typed "+strconv.Itoa(i) {
			t.Fatalf("read %d: %+v %v", i, b, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled ctx: %v", err)
	}
	pw.Close()
	if _, err := p.Read(context.Background()); !errors.Is(err, connectors.ErrEndOfInput) {
		t.Fatalf("after close: %v", err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("device gone") }

func TestStdinReadError(t *testing.T) {
	l := connectortest.Start(t, stdio.NewStdin(failing{}))
	_, err := l.Partitions()[0].Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stdin line 1: device gone") {
		t.Fatalf("got %v", err)
	}
}

func TestSinkConformance(t *testing.T) {
	var out bytes.Buffer
	connectortest.TestSink(t, func(t *testing.T) connectors.Sink { return stdio.NewSink(&out, "stdout") },
		func(t *testing.T) []connectors.Row {
			var rows []connectors.Row
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				d := json.NewDecoder(strings.NewReader(line))
				d.UseNumber()
				d.Token()
				var r connectors.Row
				for d.More() {
					k, _ := d.Token()
					var v any
					d.Decode(&v)
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
		}, connectortest.SinkOptions{})
}

// TestSinkWritesWholeLines: a writer shared with logs never sees half a row.
func TestSinkWritesWholeLines(t *testing.T) {
	w := &recorder{}
	s := stdio.NewSink(w, "stderr")
	ctx := context.Background()
	row := connectors.Row{Fields: []connectors.Field{{Name: "v", Value: strings.Repeat("x", 1000)}}}
	for range 200 {
		if err := s.Write(ctx, []connectors.Row{row}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) < 2 {
		t.Fatalf("%d writes, want the buffer to write out on its own", len(w.writes))
	}
	total := 0
	for _, wr := range w.writes {
		if !strings.HasSuffix(wr, "\n") || !strings.HasPrefix(wr, "{") {
			t.Fatalf("a write does not hold whole lines: %q…", wr[:20])
		}
		total += strings.Count(wr, "\n")
	}
	if total != 200 {
		t.Fatalf("%d lines, want 200", total)
	}
	if err := s.Write(ctx, nil); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestRegistered(t *testing.T) {
	for _, uri := range []string{"stdout", "stderr"} {
		if _, err := connectors.OpenSink(uri); err != nil {
			t.Errorf("%s: %v", uri, err)
		}
	}
	if _, err := connectors.OpenSource("stdin", nil); err != nil {
		t.Errorf("stdin: %v", err)
	}
}
