package reference

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Packet is one record of tshark_ips.lua (seed 000): a capture line's
// addresses, protocol, length and relative time.
type Packet struct {
	Src   string  `json:"src"`
	Dst   string  `json:"dst"`
	Proto string  `json:"proto"`
	Len   int64   `json:"len"`
	Time  float64 `json:"time"`
}

func (p Packet) String() string {
	return fmt.Sprintf("%s → %s %s %d %v", p.Src, p.Dst, p.Proto, p.Len, p.Time)
}

// tsharkLine is the script's pattern: number, time, source, arrow,
// destination, protocol, length.
var tsharkLine = regexp.MustCompile(`^\s*(\d+)\s+([\d.]+)\s+(\S+)\s+→\s+(\S+)\s+(\S+)\s+(\d+)`)

var (
	ipv4 = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
	ipv6 = regexp.MustCompile(`^[0-9A-Fa-f:]+$`)
)

// TsharkPackets parses capture lines as tshark_ips.lua does, independently
// of eddy (Go regexps, no Lua): a line is a tshark packet line, or a JSON
// object whose "payload" is one (Kafka Connect's form), with IPv4 (octets
// up to 255) or IPv6 (hex and at least two colons) addresses. Other lines
// are skipped, as the script sends them to the dead letters.
func TsharkPackets(lines []string) []Packet {
	var out []Packet
	for _, l := range lines {
		if p, ok := tsharkPacket(l); ok {
			out = append(out, p)
		}
	}
	return out
}

func tsharkPacket(line string) (Packet, bool) {
	if strings.HasPrefix(line, "{") {
		var wrapped struct {
			Payload *string `json:"payload"`
		}
		if json.Unmarshal([]byte(line), &wrapped) != nil || wrapped.Payload == nil {
			return Packet{}, false
		}
		line = *wrapped.Payload
	}
	m := tsharkLine.FindStringSubmatch(line)
	if m == nil || !isIP(m[3]) || !isIP(m[4]) {
		return Packet{}, false
	}
	t, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return Packet{}, false
	}
	n, err := strconv.ParseInt(m[6], 10, 64)
	if err != nil {
		return Packet{}, false
	}
	return Packet{Src: m[3], Dst: m[4], Proto: m[5], Len: n, Time: t}, true
}

func isIP(s string) bool {
	if ipv4.MatchString(s) {
		for _, octet := range strings.Split(s, ".") {
			if n, err := strconv.Atoi(octet); err != nil || n > 255 {
				return false
			}
		}
		return true
	}
	return ipv6.MatchString(s) && strings.Count(s, ":") >= 2
}
