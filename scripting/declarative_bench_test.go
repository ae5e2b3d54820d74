package scripting

import (
	"fmt"
	"testing"

	"github.com/valyala/fastjson"
)

// BenchmarkSteps is the per-record cost of the netflow filter (and a
// Nexmark q1 map) written as a Lua function and as a declarative form,
// beside a plain-Go loop doing the same work; before timing, every form's
// outcome on each line is checked against the plain-Go one.
func BenchmarkSteps(b *testing.B) {
	lines := [][]byte{
		[]byte(`{"time":"118781","dstdevice":"Comp547245","dstport":"53","type":"bid","price":12.5,"bidder":"b1"}`),
		[]byte(`{"time":"118781","dstdevice":"EnterpriseAppServer","dstport":"443","type":"bid","price":100,"bidder":"b2"}`),
		[]byte(`{"time":"118782","dstdevice":"Comp1","dstport":80,"type":"bid","price":7,"bidder":"b3"}`),
		[]byte(`{"time":"118783","dstdevice":"Comp2","dstport":"8080","type":"bid","price":3,"bidder":"b4"}`),
	}
	const parse = `parse = eddy.json { dstdevice = "string", dstport = "string|number", price = "number", bidder = "string" },`
	forms := []struct{ name, src string }{
		{"filter/lua", `local web = { ["80"] = true, ["443"] = true, [80] = true, [443] = true }
return { ` + parse + ` filter = function(r) return web[r.dstport] == true end, key = "dstdevice", aggregate = { n = eddy.count() } }`},
		{"filter/declarative", `return { ` + parse + ` filter = eddy.is_in("dstport", { "80", "443", 80, 443 }), key = "dstdevice", aggregate = { n = eddy.count() } }`},
		{"map/lua", `return { ` + parse + ` map = function(r) return { bidder = r.bidder, price_eur = r.price * 0.908 } end, key = "bidder", aggregate = { s = eddy.sum("price_eur") } }`},
		{"map/declarative", `return { ` + parse + ` map = eddy.map { "bidder", price_eur = eddy.mul("price", 0.908) }, key = "bidder", aggregate = { s = eddy.sum("price_eur") } }`},
	}
	var jp fastjson.Parser
	plain := func(line []byte, mapped bool) string {
		v, err := jp.ParseBytes(line)
		if err != nil {
			b.Fatal(err)
		}
		if mapped {
			return fmt.Sprintf("%s %v", v.GetStringBytes("bidder"), number(v.GetFloat64("price")*0.908))
		}
		port := v.Get("dstport")
		web := false
		switch port.Type() {
		case fastjson.TypeString:
			s := string(port.GetStringBytes())
			web = s == "80" || s == "443"
		case fastjson.TypeNumber:
			f := port.GetFloat64()
			web = f == 80 || f == 443
		}
		if !web {
			return "dropped"
		}
		return string(v.GetStringBytes("dstdevice"))
	}
	b.Run("filter/go", func(b *testing.B) { benchPlain(b, lines, func(l []byte) string { return plain(l, false) }) })
	b.Run("map/go", func(b *testing.B) { benchPlain(b, lines, func(l []byte) string { return plain(l, true) }) })
	for _, f := range forms {
		rt := runtimeOfB(b, f.src)
		mapped := f.name[:3] == "map"
		for _, l := range lines {
			k, _, kept, err := rt.Process(l)
			got := "dropped"
			switch {
			case kept && mapped:
				got = fmt.Sprintf("%s %v", k.Key, k.Vals[1])
			case kept:
				got = k.Key
			}
			if want := plain(l, mapped); err != nil || got != want {
				b.Fatalf("%s: %s gives %q (%v), plain Go %q", f.name, l, got, err, want)
			}
		}
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, _, err := rt.Process(lines[i&3]); err != nil {
					b.Fatal(err)
				}
			}
		})
		rt.Close()
	}
}

func benchPlain(b *testing.B, lines [][]byte, f func([]byte) string) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = f(lines[i&3])
	}
}

func runtimeOfB(b *testing.B, src string) *Runtime {
	p, err := LoadSource("bench.lua", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	return rt
}
