package scripting

import "testing"

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
