package gen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

func open(uri string) func(t *testing.T) connectors.Source {
	return func(t *testing.T) connectors.Source {
		t.Helper()
		s, err := connectors.OpenSource(uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	for _, uri := range []string{
		"gen:netflow?count=5000&seed=7&bad=0.05",
		"gen:tshark?count=3000&bad=0.1",
		"gen:netflow?count=1024",
		"gen:tshark?count=1",
		"gen:nexmark?stream=auction&count=3000&bad=0.05",
	} {
		t.Run(uri, func(t *testing.T) { connectortest.TestSource(t, open(uri), connectortest.SourceOptions{}) })
	}
	t.Run("unbounded", func(t *testing.T) {
		connectortest.TestSource(t, open("gen:netflow?seed=3"), connectortest.SourceOptions{MaxRecords: 4000})
	})
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"count not a number", "gen:netflow?count=abc", `count="abc"`},
		{"negative count", "gen:netflow?count=-1", "count=-1"},
		{"seed not a number", "gen:netflow?seed=x", `seed="x"`},
		{"rate not a number", "gen:netflow?rate=fast", `rate="fast"`},
		{"negative rate", "gen:netflow?rate=-5", "rate=-5"},
		{"bad above 1", "gen:netflow?bad=1.5", "bad=1.5"},
		{"unknown generator", "gen:nope", `unknown generator "nope" (known: netflow, `},
		{"no generator", "gen:", `unknown generator ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.OpenSource(tt.uri, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got error %v, want one containing %q", err, tt.errContains)
			}
		})
	}
}

func TestSeekMismatch(t *testing.T) {
	l := connectortest.Start(t, open("gen:netflow?count=100&seed=1")(t))
	p := l.Partitions()[0]
	b, err := p.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"gen:netflow?count=100&seed=2", "gen:netflow?count=200&seed=1", "gen:tshark?count=100&seed=1", "gen:netflow?count=100&bad=0.1"} {
		l2 := connectortest.Start(t, open(uri)(t))
		err := l2.Partitions()[0].Seek(b.End)
		if err == nil || !strings.Contains(err.Error(), "checkpoint was taken with gen:netflow seed=1 count=100") {
			t.Errorf("%s: Seek got %v, want a mismatch error", uri, err)
		}
	}
	if err := p.Seek(connectors.Position("{nope")); err == nil {
		t.Error("Seek of a broken position succeeded")
	}
}

// TestWriteMatchesSource: Write, WriteDir and the source yield the same lines.
func TestWriteMatchesSource(t *testing.T) {
	for _, name := range gen.Names() {
		t.Run(name, func(t *testing.T) {
			const n = 2500
			l := connectortest.Start(t, open("gen:"+name+"?count=2500&seed=9&bad=0.02")(t))
			res := connectortest.ReadAll(t, l.Partitions()[0], 0, 0)
			if !res.Ended {
				t.Fatal("source did not end after count")
			}
			var src bytes.Buffer
			for i, r := range res.Records() {
				if r.Seq != int64(i) {
					t.Fatalf("record %d has Seq %d", i, r.Seq)
				}
				src.Write(r.Value)
				src.WriteByte('\n')
			}
			var all bytes.Buffer
			if err := gen.Write(&all, name, 9, 0, n, 0.02); err != nil {
				t.Fatal(err)
			}
			if all.String() != src.String() {
				t.Fatal("Write differs from the source")
			}
			var mid bytes.Buffer
			if err := gen.Write(&mid, name, 9, 1000, 700, 0.02); err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(all.String(), "\n")
			if mid.String() != strings.Join(lines[1000:1700], "") {
				t.Fatal("Write of lines 1000-1699 differs from those lines of a full Write")
			}

			dir := filepath.Join(t.TempDir(), "out")
			if err := gen.WriteDir(dir, name, 9, n, 3, 0.02); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := gen.Lookup(name)
			var joined bytes.Buffer
			for i, e := range entries {
				if want := "part-0000" + string(rune('0'+i)) + g.Ext(); e.Name() != want {
					t.Fatalf("file %d is %s, want %s", i, e.Name(), want)
				}
				b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				joined.Write(b)
			}
			if len(entries) != 3 || joined.String() != all.String() {
				t.Fatalf("WriteDir wrote %d files that differ from Write", len(entries))
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	var b bytes.Buffer
	if err := gen.Write(&b, "nope", 1, 0, 1, 0); err == nil || !strings.Contains(err.Error(), "known: netflow, ") {
		t.Errorf("unknown name: %v", err)
	}
	if err := gen.Write(&b, "netflow", 1, -1, 1, 0); err == nil {
		t.Error("negative from accepted")
	}
	if err := gen.WriteDir(t.TempDir(), "netflow", 1, 10, 0, 0); err == nil {
		t.Error("files=0 accepted")
	}
}

func TestRateHonoursContext(t *testing.T) {
	l := connectortest.Start(t, open("gen:netflow?rate=10")(t))
	p := l.Partitions()[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled ctx: %v", err)
	}
	// At 10/s the first record is due 100ms after the first read.
	ctx, cancel2 := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.Read(ctx)
		done <- err
	}()
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("paced Read after cancel: %v", err)
	}
}

func TestRatePaces(t *testing.T) {
	l := connectortest.Start(t, open("gen:tshark?rate=2000&count=200")(t))
	res := connectortest.ReadAll(t, l.Partitions()[0], 0, 0)
	n := len(res.Records())
	if n != 200 || len(res.Batches) < 2 {
		t.Fatalf("got %d records in %d batches, want 200 in small batches", n, len(res.Batches))
	}
	for _, b := range res.Batches {
		if len(b.Records) > 100 {
			t.Fatalf("a paced batch has %d records, want at most rate/20", len(b.Records))
		}
	}
}

func lines(t *testing.T, name string, n int64, bad float64) []string {
	t.Helper()
	var b bytes.Buffer
	if err := gen.Write(&b, name, 1, 0, n, bad); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// webFlow applies seed 003's rule: a string dstdevice, dstport "80"/"443"
// or 80/443. It reports false, with ok false, for a malformed line.
func webFlow(line string) (device string, web, ok bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return "", false, false
	}
	dev, isStr := m["dstdevice"].(string)
	if !isStr {
		return "", false, false
	}
	for _, f := range []string{"time", "duration", "srcdevice", "protocol", "srcport", "srcpackets", "dstpackets", "srcbytes", "dstbytes"} {
		if _, isStr := m[f].(string); !isStr {
			return "", false, false
		}
	}
	switch p := m["dstport"].(type) {
	case string:
		return dev, p == "80" || p == "443", true
	case float64:
		return dev, p == 80 || p == 443, true
	}
	return "", false, false
}

func TestNetflowShape(t *testing.T) {
	const n = 100000
	good := lines(t, "netflow", n, 0)
	web, numbers := 0, 0
	counts := map[string]int{}
	prevTime := ""
	for i, l := range good {
		dev, isWeb, ok := webFlow(l)
		if !ok {
			t.Fatalf("line %d is malformed with bad=0: %s", i, l)
		}
		if strings.Contains(l, `"dstport":`) && !strings.Contains(l, `"dstport":"`) {
			numbers++
		}
		if !strings.HasPrefix(l, `{"time":"`) {
			t.Fatalf("line %d does not start with time: %s", i, l)
		}
		tm := l[9 : strings.IndexByte(l[9:], '"')+9]
		if len(tm) < len(prevTime) || (len(tm) == len(prevTime) && tm < prevTime) {
			t.Fatalf("time goes back at line %d: %s after %s", i, tm, prevTime)
		}
		prevTime = tm
		if isWeb {
			web++
			counts[dev]++
		}
	}
	if f := float64(web) / n; f < 0.10 || f > 0.15 {
		t.Errorf("web flows are %.3f of all, want 0.10-0.15", f)
	}
	if f := float64(numbers) / n; f < 0.005 || f > 0.05 {
		t.Errorf("numeric dstports are %.3f of all, want a few percent", f)
	}
	if len(counts) < 1000 {
		t.Errorf("only %d distinct web dstdevices", len(counts))
	}
	top, topN := "", 0
	for d, c := range counts {
		if c > topN {
			top, topN = d, c
		}
	}
	if top != "EnterpriseAppServer" {
		t.Errorf("top web server is %s (%d), want EnterpriseAppServer", top, topN)
	}

	bad := lines(t, "netflow", 20000, 0.1)
	malformed := 0
	for _, l := range bad {
		if _, _, ok := webFlow(l); !ok {
			malformed++
		}
		if l == "" {
			t.Fatal("an empty line would vanish from a dir: source's records")
		}
	}
	if f := float64(malformed) / 20000; f < 0.08 || f > 0.12 {
		t.Errorf("malformed lines are %.3f with bad=0.1", f)
	}
}

// tsharkFields splits like seed 000's parser: number, time, source, "→",
// destination, protocol, length, info.
func tsharkFields(line string) (src, dst string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 7 || f[3] != "→" {
		return "", "", false
	}
	return f[2], f[4], true
}

func TestTsharkShape(t *testing.T) {
	good := lines(t, "tshark", 20000, 0)
	protos := map[string]int{}
	v6 := 0
	for i, l := range good {
		src, dst, ok := tsharkFields(l)
		if !ok {
			t.Fatalf("line %d does not parse: %q", i, l)
		}
		if strings.Contains(src+dst, ":") && !strings.Contains(src+dst, "_") {
			v6++
		}
		protos[strings.Fields(l)[5]]++
	}
	for _, p := range []string{"TCP", "UDP", "DNS", "TLSv1.2", "QUIC", "ICMP", "ARP", "MDNS"} {
		if protos[p] == 0 {
			t.Errorf("no %s lines", p)
		}
	}
	if v6 == 0 {
		t.Error("no IPv6 lines")
	}
	if !strings.HasPrefix(good[0], "    1 0.00") {
		t.Errorf("first line %q does not start like tshark's", good[0])
	}
	bad := lines(t, "tshark", 20000, 0.1)
	unparsed := 0
	for _, l := range bad {
		if _, _, ok := tsharkFields(l); !ok {
			unparsed++
		}
	}
	if f := float64(unparsed) / 20000; f < 0.08 || f > 0.12 {
		t.Errorf("unparseable lines are %.3f with bad=0.1", f)
	}
}

func BenchmarkNetflowSource(b *testing.B) {
	s, _ := gen.New("netflow", gen.Config{Seed: 1})
	l := connectortest.NewListener()
	_ = s.Start(context.Background(), l)
	p := l.Partitions()[0]
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		bt, _ := p.Read(context.Background())
		n += len(bt.Records)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func TestStream(t *testing.T) {
	var want, got bytes.Buffer
	if err := gen.Write(&want, "tshark", 4, 0, 1500, 0.1); err != nil {
		t.Fatal(err)
	}
	if err := gen.Stream(context.Background(), &got, "tshark", gen.Config{Seed: 4, Count: 1500, Bad: 0.1}); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatal("Stream differs from Write")
	}
	// Unbounded and paced: stops cleanly when ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 3, cancel: cancel}
	if err := gen.Stream(ctx, w, "netflow", gen.Config{Seed: 1, Rate: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.New("netflow", gen.Config{Bad: 2}); err == nil {
		t.Fatal("bad=2 accepted")
	}
}

// cancelAfter cancels its context after n writes.
type cancelAfter struct {
	n      int
	cancel func()
	buf    bytes.Buffer
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
	return c.buf.Write(p)
}
