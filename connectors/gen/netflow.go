package gen

import (
	"math/rand/v2"
	"strconv"
	"sync"
)

// netflow makes JSON lines shaped like the LANL netflow data of seed 003:
// every field a JSON string, dstdevice Zipf-skewed over ~50k devices so a
// top 20 is meaningful, 10-15% of flows to port 80 or 443, and a few
// percent of well-known dstports as JSON numbers, because real feeds mix
// "80" and 80 and the pipeline must accept both.
type netflow struct{}

func (netflow) Ext() string { return ".json" }

const netflowDevices = 50000

// netflowServers are the top of the dstdevice distribution, named as in
// seed 003's results, so the top 20 reads like the tutorial's.
var netflowServers = []string{
	"EnterpriseAppServer", "Comp576843", "Comp186884", "ActiveDirectory", "Comp501516",
	"Comp393033", "Comp916004", "Comp498128", "Comp573929", "Comp611862",
	"Comp370444", "Comp097048", "Comp847595", "Comp574103", "Comp309567",
	"Comp509586", "Comp216677", "Comp336938", "Comp657655", "Comp146745",
	"Comp457448", "Comp523500", "VPN", "IP564116", "Comp275646",
}

var deviceNames = sync.OnceValue(func() []string {
	names := make([]string, netflowDevices)
	copy(names, netflowServers)
	for k := len(netflowServers); k < netflowDevices; k++ {
		// 7919 is prime, so k → number is one-to-one below a million.
		num := (int64(k)*7919 + 12345) % 1000000
		if k%97 == 0 {
			names[k] = "IP" + pad6(num)
		} else {
			names[k] = "Comp" + pad6(num)
		}
	}
	return names
})

func pad6(n int64) string {
	s := strconv.FormatInt(n, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// Well-known non-web ports and how often (in 1/1000) a non-web flow uses one.
var netflowPorts = []struct {
	port  int
	proto string
	per   int
}{
	{53, "17", 120}, {445, "6", 60}, {22, "6", 30}, {135, "6", 30}, {139, "6", 20},
	{389, "6", 25}, {88, "6", 25}, {123, "17", 20}, {3389, "6", 15}, {8080, "6", 15},
	{25, "6", 10}, {514, "17", 10}, {137, "17", 10},
}

func (netflow) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	names := deviceNames()
	dst := rand.NewZipf(r, 1.1, 2, netflowDevices-1)
	src := rand.NewZipf(r, 1.02, 50, netflowDevices-1)
	var scratch []byte
	return func(b []byte, i int64, bad bool) []byte {
		f := netflowFlow(r, names, dst, src, i)
		if !bad {
			return f.append(b, modeGood)
		}
		switch r.IntN(6) {
		case 0: // truncated JSON: a strict prefix of an object never parses
			scratch = f.append(scratch[:0], modeGood)
			return append(b, scratch[:1+r.IntN(len(scratch)-2)]...)
		case 1:
			return append(b, netflowJunk[r.IntN(len(netflowJunk))]...)
		default:
			return f.append(b, modeGood+1+r.IntN(4))
		}
	}
}

var netflowJunk = []string{
	"ERROR: flow export interrupted",
	"time,duration,srcdevice,dstdevice,protocol,srcport,dstport",
	"<html><body>502 Bad Gateway</body></html>",
	"Comp576843 -> EnterpriseAppServer 443",
	"null",
	"[]",
	"{}",
}

const (
	modeGood = iota
	modePortObject
	modePortArray
	modeDeviceNumber
	modeNoDevice
)

type flow struct {
	time, duration                   int64
	srcdevice, dstdevice             string
	protocol                         string
	srcport, dstport                 int
	portNumber                       bool // dstport as a JSON number
	srcpackets, dstpackets           int64
	srcbytes, dstbytes, deviceNumber int64
}

func netflowFlow(r *rand.Rand, names []string, dst, src *rand.Zipf, i int64) flow {
	f := flow{time: 172800 + i/30, protocol: "6"}
	rank := dst.Uint64()
	f.dstdevice = names[rank]
	f.srcdevice = names[(src.Uint64()+1000)%netflowDevices]
	if f.srcdevice == f.dstdevice {
		f.srcdevice = names[(rank+1)%netflowDevices]
	}
	f.deviceNumber = int64(rank*7 + 3)
	webPer := 50 // in 1/1000
	switch {
	case f.dstdevice == "ActiveDirectory":
		webPer = 5
	case f.dstdevice == "VPN":
		webPer = 900
	case rank < 400:
		webPer = 150
	}
	f.srcport = 1024 + r.IntN(64511)
	roll := r.IntN(1000)
	switch {
	case roll < webPer:
		f.dstport = 443
		if r.IntN(5) < 2 {
			f.dstport = 80
		}
	default:
		roll = r.IntN(1000)
		f.dstport = 1024 + r.IntN(64511) // ephemeral unless a well-known port wins
		for _, p := range netflowPorts {
			if roll < p.per {
				f.dstport, f.protocol = p.port, p.proto
				break
			}
			roll -= p.per
		}
	}
	if f.dstport < 1024 || f.dstport == 3389 || f.dstport == 8080 {
		f.portNumber = r.IntN(100) < 4
	}
	if r.IntN(50) == 0 {
		f.protocol = "1"
	}
	if r.IntN(2) == 0 {
		f.duration = int64(r.ExpFloat64() * 20)
	}
	f.srcpackets = 1 + int64(r.ExpFloat64()*8)
	f.dstpackets = int64(r.ExpFloat64() * 8)
	f.srcbytes = f.srcpackets * int64(40+r.IntN(1400))
	f.dstbytes = f.dstpackets * int64(40+r.IntN(1400))
	return f
}

func (f *flow) append(b []byte, mode int) []byte {
	b = append(b, `{"time":"`...)
	b = strconv.AppendInt(b, f.time, 10)
	b = append(b, `","duration":"`...)
	b = strconv.AppendInt(b, f.duration, 10)
	b = append(b, `","srcdevice":"`...)
	b = append(b, f.srcdevice...)
	switch mode {
	case modeNoDevice:
		b = append(b, '"')
	case modeDeviceNumber:
		b = append(b, `","dstdevice":`...)
		b = strconv.AppendInt(b, f.deviceNumber, 10)
	default:
		b = append(b, `","dstdevice":"`...)
		b = append(b, f.dstdevice...)
		b = append(b, '"')
	}
	b = append(b, `,"protocol":"`...)
	b = append(b, f.protocol...)
	b = append(b, `","srcport":"`...)
	b = appendPort(b, f.srcport)
	b = append(b, `","dstport":`...)
	switch {
	case mode == modePortObject:
		b = append(b, `{"port":`...)
		b = strconv.AppendInt(b, int64(f.dstport), 10)
		b = append(b, '}')
	case mode == modePortArray:
		b = append(b, '[', '"')
		b = appendPort(b, f.dstport)
		b = append(b, '"', ']')
	case f.portNumber:
		b = strconv.AppendInt(b, int64(f.dstport), 10)
	default:
		b = append(b, '"')
		b = appendPort(b, f.dstport)
		b = append(b, '"')
	}
	b = append(b, `,"srcpackets":"`...)
	b = strconv.AppendInt(b, f.srcpackets, 10)
	b = append(b, `","dstpackets":"`...)
	b = strconv.AppendInt(b, f.dstpackets, 10)
	b = append(b, `","srcbytes":"`...)
	b = strconv.AppendInt(b, f.srcbytes, 10)
	b = append(b, `","dstbytes":"`...)
	b = strconv.AppendInt(b, f.dstbytes, 10)
	return append(b, `"}`...)
}

// appendPort writes well-known ports as numbers ("443") and ephemeral ones
// as LANL does ("Port52341").
func appendPort(b []byte, p int) []byte {
	if p >= 10000 || (p >= 1024 && p != 3389 && p != 8080) {
		b = append(b, "Port"...)
		if p < 10000 {
			b = append(b, '0')
		}
	}
	return strconv.AppendInt(b, int64(p), 10)
}
