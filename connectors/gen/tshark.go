package gen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
)

// tshark makes text lines like `tshark -i en0` prints (seed 000): number,
// relative time, source, "→", destination, protocol, length, info. Bad
// lines are what ends up in such a log besides packets: the "Capturing on"
// banner, a bare packet count, lines cut short.
type tshark struct{}

func (tshark) Ext() string { return ".log" }

var tsharkLocal = []string{"192.168.1.10", "192.168.1.23", "192.168.1.42", "192.168.1.57"}

var tsharkLocal6 = []string{"2601:646:8d01:a3b0::5f", "2601:646:8d01:a3b0:1c2b:3c4d:5e6f:7a8b"}

var tsharkRemote = sync.OnceValue(func() []string {
	known := []string{
		"93.184.216.34", "142.250.72.14", "17.253.144.10", "151.101.1.69", "104.16.132.229",
		"13.107.42.14", "52.84.150.11", "140.82.112.3", "31.13.70.36", "23.215.0.138",
	}
	out := append([]string(nil), known...)
	for k := uint32(len(known)); len(out) < 300; k++ {
		h := k*2654435761 + 0x9e3779b9
		out = append(out, fmt.Sprintf("%d.%d.%d.%d", 1+h>>24%222, h>>16&0xff, h>>8&0xff, 1+h&0xff%254))
	}
	return out
})

var tsharkRemote6 = []string{"2606:4700::6810:84e5", "2a03:2880:f10c:83:face:b00c:0:25de", "2607:f8b0:4005:80a::200e"}

var tsharkDomains = []string{"example.com", "www.google.com", "api.github.com", "time.apple.com", "cdn.jsdelivr.net", "slack.com"}

var tsharkFlags = []string{"[SYN]", "[SYN, ACK]", "[ACK]", "[PSH, ACK]", "[PSH, ACK]", "[ACK]", "[FIN, ACK]", "[RST]"}

func (tshark) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	remote := tsharkRemote()
	pick := rand.NewZipf(r, 1.2, 1, uint64(len(remote)-1))
	var scratch []byte
	return func(b []byte, i int64, bad bool) []byte {
		if bad {
			switch r.IntN(4) {
			case 0:
				return append(b, "Capturing on 'Wi-Fi: en0'"...)
			case 1:
				return strconv.AppendInt(b, int64(1+r.IntN(5000)), 10)
			case 2:
				return append(b, "tshark: Some fields were cut short"...)
			}
			// Cut a real line after its source address or its arrow.
			scratch = tsharkLine(scratch[:0], r, pick, remote, i)
			arrow := 0
			for k := 0; k+2 < len(scratch); k++ {
				if scratch[k] == 0xe2 && scratch[k+1] == 0x86 && scratch[k+2] == 0x92 {
					arrow = k
					break
				}
			}
			if r.IntN(2) == 0 {
				arrow += 3
			}
			return append(b, scratch[:arrow]...)
		}
		return tsharkLine(b, r, pick, remote, i)
	}
}

func tsharkLine(b []byte, r *rand.Rand, pick *rand.Zipf, remote []string, i int64) []byte {
	b = tsharkPrefix(b, r, i)
	local4 := tsharkLocal[r.IntN(len(tsharkLocal))]
	local, far := local4, remote[pick.Uint64()]
	if r.IntN(12) == 0 {
		local = tsharkLocal6[r.IntN(len(tsharkLocal6))]
		far = tsharkRemote6[r.IntN(len(tsharkRemote6))]
	}
	out := r.IntN(2) == 0
	src, dst := local, far
	if !out {
		src, dst = far, local
	}
	ephemeral := 49152 + r.IntN(16383)
	roll := r.IntN(100)
	switch {
	case roll < 5: // ARP
		mac := fmt.Sprintf("Apple_%02x:%02x:%02x", r.IntN(256), r.IntN(256), r.IntN(256))
		if r.IntN(3) == 0 {
			return fmt.Appendf(b, "Netgear_1a:2b:3c → %s ARP 42 192.168.1.1 is at a0:04:60:1a:2b:3c", mac)
		}
		return fmt.Appendf(b, "%s → Broadcast ARP 42 Who has 192.168.1.1? Tell %s", mac, tsharkLocal[r.IntN(len(tsharkLocal))])
	case roll < 17: // DNS
		id := r.IntN(65536)
		dom := tsharkDomains[r.IntN(len(tsharkDomains))]
		if r.IntN(2) == 0 {
			return fmt.Appendf(b, "%s → 192.168.1.1 DNS %d Standard query 0x%04x A %s", local4, 60+len(dom)+r.IntN(20), id, dom)
		}
		return fmt.Appendf(b, "192.168.1.1 → %s DNS %d Standard query response 0x%04x A %s A %s", local4, 90+len(dom)+r.IntN(40), id, dom, remote[pick.Uint64()])
	case roll < 20: // mDNS on IPv6
		return fmt.Appendf(b, "fe80::1c2b:3c4d:5e6f:7a8b → ff02::fb MDNS %d Standard query 0x0000 PTR _airplay._tcp.local, \"QM\" question", 90+r.IntN(30))
	case roll < 23: // ICMP
		kind := "request"
		if !out {
			kind = "reply  "
		}
		seq := r.IntN(1000)
		return fmt.Appendf(b, "%s → %s ICMP 98 Echo (ping) %s id=0x%04x, seq=%d/%d, ttl=%d", src, dst, kind, r.IntN(65536), seq, seq<<8&0xffff, 52+r.IntN(12))
	case roll < 38: // QUIC
		return fmt.Appendf(b, "%s → %s QUIC %d Protected Payload (KP0), DCID=%016x", src, dst, 80+r.IntN(1300), r.Uint64())
	case roll < 43: // UDP
		n := 20 + r.IntN(500)
		return fmt.Appendf(b, "%s → %s UDP %d %d → %d Len=%d", src, dst, n+42, ephemeral, 3478+r.IntN(3), n)
	case roll < 63: // TLS
		infos := []string{"Application Data", "Application Data", "Client Hello", "Server Hello, Change Cipher Spec, Encrypted Handshake Message"}
		return fmt.Appendf(b, "%s → %s TLSv1.2 %d %s", src, dst, 100+r.IntN(1414), infos[r.IntN(len(infos))])
	}
	return tsharkTCP(b, r, src, dst, out, ephemeral)
}

// tsharkPrefix appends the frame number, right-aligned as tshark does, and
// the relative time, which grows with i.
func tsharkPrefix(b []byte, r *rand.Rand, i int64) []byte {
	num := strconv.AppendInt(nil, i+1, 10)
	for k := len(num); k < 5; k++ {
		b = append(b, ' ')
	}
	b = append(b, num...)
	b = append(b, ' ')
	us := i*3500 + int64(r.IntN(3500))
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := strconv.AppendInt(nil, us%1e6, 10)
	for k := len(frac); k < 6; k++ {
		b = append(b, '0')
	}
	b = append(b, frac...)
	return append(b, ' ')
}

// tsharkTCP appends a TCP packet's protocol, length and info.
func tsharkTCP(b []byte, r *rand.Rand, src, dst string, out bool, ephemeral int) []byte {
	flags := tsharkFlags[r.IntN(len(tsharkFlags))]
	port := 443
	if r.IntN(4) == 0 {
		port = 80
	}
	sp, dp := ephemeral, port
	if !out {
		sp, dp = port, ephemeral
	}
	win := 65535 - r.IntN(2000)
	switch flags {
	case "[SYN]":
		return fmt.Appendf(b, "%s → %s TCP 66 %d → %d %s Seq=0 Win=%d Len=0", src, dst, sp, dp, flags, win)
	case "[PSH, ACK]":
		n := 1 + r.IntN(1448)
		return fmt.Appendf(b, "%s → %s TCP %d %d → %d %s Seq=%d Ack=%d Win=%d Len=%d", src, dst, n+66, sp, dp, flags, 1+r.IntN(100000), 1+r.IntN(100000), win, n)
	}
	return fmt.Appendf(b, "%s → %s TCP 66 %d → %d %s Seq=%d Ack=%d Win=%d Len=0", src, dst, sp, dp, flags, 1+r.IntN(100000), 1+r.IntN(100000), win)
}
