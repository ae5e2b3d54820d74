package scripting

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/valyala/fastjson"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// BenchmarkProcess is the per-record cost of the netflow script's
// parse/filter/key in one runtime.
func BenchmarkProcess(b *testing.B) {
	p, err := Load("../scripts/netflow_webservers.lua")
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	lines := [][]byte{
		[]byte(`{"time":"118781","duration":"5","srcdevice":"Comp364445","dstdevice":"Comp547245","protocol":"17","srcport":"Port11201","dstport":"53","srcpackets":"1","dstpackets":"1","srcbytes":"72","dstbytes":"88"}`),
		[]byte(`{"time":"118781","duration":"0","srcdevice":"Comp450942","dstdevice":"EnterpriseAppServer","protocol":"6","srcport":"Port97189","dstport":"443","srcpackets":"10","dstpackets":"12","srcbytes":"1823","dstbytes":"7300"}`),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, _, err := rt.Process(lines[i&1]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcat is the cost of `..` routed through the checked concat
// (checked) beside gopher-lua's own OP_CONCAT (vm), in a call the size of
// a small parse function.
func BenchmarkConcat(b *testing.B) {
	src := `return function(x) return "device:" .. x .. ":" .. x end`
	for _, bc := range []struct {
		name    string
		rewrite bool
	}{{"checked", true}, {"vm", false}} {
		b.Run(bc.name, func(b *testing.B) {
			chunk, err := parse.Parse(strings.NewReader(src), "b.lua")
			if err != nil {
				b.Fatal(err)
			}
			if bc.rewrite {
				chunk = rewriteConcat(chunk)
			}
			proto, err := lua.Compile(chunk, "b.lua")
			if err != nil {
				b.Fatal(err)
			}
			p := &Pipeline{Script: "b.lua", CallTimeout: DefaultCallTimeout, MemoryLimit: DefaultMemoryLimit, logger: slog.Default(), intr: newInterrupts()}
			sb := newSandbox(p)
			defer sb.close()
			if err := sb.call(sb.L.NewFunctionFromProto(proto), 1); err != nil {
				b.Fatal(err)
			}
			fn := sb.L.Get(-1)
			sb.L.Pop(1)
			arg := lua.LString("Comp364445")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := sb.call(fn, 1, arg); err != nil {
					b.Fatal(err)
				}
				sb.L.Pop(1)
			}
		})
	}
}

// BenchmarkMatch is eddy's pattern matcher beside gopher-lua's on the
// kind of match a parse function does.
func BenchmarkMatch(b *testing.B) {
	src := `return function(line) return string.match(line, "^(%d+)-(%d+)-(%d+)T(%d+):(%d+)") end`
	line := lua.LString("2021-11-10T11:10:17Z GET /index.html 200")
	b.Run("eddy", func(b *testing.B) {
		p := &Pipeline{Script: "b.lua", CallTimeout: DefaultCallTimeout, MemoryLimit: DefaultMemoryLimit, logger: slog.Default(), intr: newInterrupts()}
		sb := newSandbox(p)
		defer sb.close()
		proto, err := compile([]byte(src), "b.lua")
		if err != nil {
			b.Fatal(err)
		}
		if err := sb.call(sb.L.NewFunctionFromProto(proto), 1); err != nil {
			b.Fatal(err)
		}
		fn := sb.L.Get(-1)
		sb.L.Pop(1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := sb.call(fn, 5, line); err != nil {
				b.Fatal(err)
			}
			sb.L.Pop(5)
		}
	})
	b.Run("gopher-lua", func(b *testing.B) {
		L := lua.NewState()
		defer L.Close()
		if err := L.DoString(src); err != nil {
			b.Fatal(err)
		}
		fn := L.Get(-1)
		L.Pop(1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			L.Push(fn)
			L.Push(line)
			if err := L.PCall(1, 5, nil); err != nil {
				b.Fatal(err)
			}
			L.Pop(5)
		}
	})
}

// BenchmarkJSONDecode is eddy.json's decode of a netflow record into the
// record table: the scan (jsonscan.go) beside the fastjson tree it
// replaces on the common path.
func BenchmarkJSONDecode(b *testing.B) {
	p, err := Load("../scripts/netflow_webservers.lua")
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	line := []byte(`{"time":"118781","duration":"0","srcdevice":"Comp450942","dstdevice":"EnterpriseAppServer","protocol":"6","srcport":"Port97189","dstport":"443","srcpackets":"10","dstpackets":"12","srcbytes":"1823","dstbytes":"7300"}`)
	for _, bc := range []struct {
		name   string
		decode func([]byte) (*lua.LTable, error)
	}{{"scan", rt.parseJSON}, {"tree", rt.parseJSONTree}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDirect is the per-record cost of a pipeline with no Lua per
// record (bench-windows' script) on the direct path (direct.go) beside
// the table path it replaces: see -benchmem's allocations.
func BenchmarkDirect(b *testing.B) {
	src := `return {
  parse = eddy.json { sensor = "string", ts = "string", temp = "number" },
  event_time = "ts",
  key = "sensor",
  window = eddy.tumbling("1m"),
  aggregate = { readings = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
}`
	line := []byte(`{"sensor":"sensor-00042","ts":"2024-05-01T10:00:01.000Z","temp":21.5,"unit":"C"}`)
	for _, path := range []string{"direct", "table"} {
		p, err := LoadSource("w.lua", []byte(src))
		if err != nil {
			b.Fatal(err)
		}
		if !p.direct {
			b.Fatal("the script does not take the direct path")
		}
		p.direct = path == "direct"
		rt, err := p.NewRuntime(false)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := rt.ProcessAt(line, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		rt.Close()
	}
}

// BenchmarkJSONScan is the scan alone (the spans of eddy.json's fields,
// no record table) over netflow records, beside fastjson's parse of the
// same records (which the plain-Go baselines use).
func BenchmarkJSONScan(b *testing.B) {
	lines := [][]byte{
		[]byte(`{"time":"118781","duration":"0","srcdevice":"Comp450942","dstdevice":"EnterpriseAppServer","protocol":"6","srcport":"Port97189","dstport":"443","srcpackets":"10","dstpackets":"12","srcbytes":"1823","dstbytes":"7300"}`),
		[]byte(`{"time":"172800","duration":"0","srcdevice":"Comp102848","dstdevice":"Comp732465","protocol":"6","srcport":"Port10853","dstport":"Port64426","srcpackets":"8","dstpackets":"3","srcbytes":"1125","dstbytes":"3954"}`),
	}
	names := []string{"dstdevice", "dstport"}
	spans := make([]jsonSpan, len(names))
	b.Run("scan", func(b *testing.B) {
		var shape jsonShape
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lines {
				if ok, _ := scanJSONText(l, names, spans, &shape); !ok {
					b.Fatal("not scanned")
				}
			}
		}
	})
	b.Run("fastjson", func(b *testing.B) {
		var p fastjson.Parser
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lines {
				if _, err := p.ParseBytes(l); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkWindowParse is a parse worker's cost a record in
// bench-windows: its script on the records its generator writes (10,000
// sensors reading each second, in random order within the second), so
// the value caches and keys see as many distinct sensors as in the bench,
// unlike BenchmarkDirect's one record. cpu-ns/op is the process's CPU
// time a record.
func BenchmarkWindowParse(b *testing.B) {
	var buf bytes.Buffer
	if err := gen.Write(&buf, "sensors?sensors=10000&gap=0&spike=0.001&delay=5s", 7, 0, 200_000, 0); err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	_, rt := loadRuntime(b, "windows.lua", `return {
  parse = eddy.json { sensor = "string", ts = "string", temp = "number" },
  event_time = "ts",
  watermark = { out_of_order = "10s" },
  key = "sensor",
  window = eddy.tumbling("1m"),
  aggregate = { readings = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
  emit = "final",
}`)
	b.ReportAllocs()
	defer benchrun.ReportCPU(b)()
	i := 0
	for b.Loop() {
		if _, _, _, err := rt.ProcessAt(lines[i], 0); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(lines) {
			i = 0
		}
	}
}
