package reference

import "github.com/valyala/fastjson"

// WebFlowDevice is NetflowCounts' test of one line done as fast as plain Go
// can: the benchmarks' baseline (fastjson with a parser reused). It returns
// the line's dstdevice when the flow goes to port 80 or 443; the slice is
// p's until its next parse.
func WebFlowDevice(p *fastjson.Parser, line []byte) ([]byte, bool) {
	v, err := p.ParseBytes(line)
	if err != nil {
		return nil, false
	}
	dev, port := v.Get("dstdevice"), v.Get("dstport")
	if dev == nil || dev.Type() != fastjson.TypeString || port == nil {
		return nil, false
	}
	var ps string
	switch port.Type() {
	case fastjson.TypeString:
		ps = string(port.GetStringBytes())
	case fastjson.TypeNumber:
		ps = port.String()
	}
	if ps != "80" && ps != "443" {
		return nil, false
	}
	return dev.GetStringBytes(), true
}
