package reference

import (
	"fmt"
	"strings"
	"testing"
)

// The examples of tshark_ips.lua's own tests.
func TestTsharkPackets(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"packets", []string{
			"    1 0.000000 192.168.1.10 → 93.184.216.34 TCP 66 54321 → 443 [SYN] Seq=0 Win=65535 Len=0",
			"    3 0.010300 192.168.1.10 → 93.184.216.34 TLSv1.2 583 Client Hello",
			`{"schema":{"type":"string"},"payload":"    4 0.2 fe80::1 → ff02::fb MDNS 87 Standard query"}`,
		}, "[192.168.1.10 → 93.184.216.34 TCP 66 0 192.168.1.10 → 93.184.216.34 TLSv1.2 583 0.0103 fe80::1 → ff02::fb MDNS 87 0.2]"},
		{"not packets", []string{
			"Capturing on 'Wi-Fi: en0'",
			"865",
			"    5 0.5 Apple_12:34:56 → Broadcast ARP 42 Who has 192.168.1.1? Tell 192.168.1.10",
			"    6 0.6 10.0.0.1 →",
			"    8 0.8 10.0.0.1 → 10.0.0.256 UDP 70",
			`{"payload_missing": true}`,
			"    7 0.7 10.0.0.1 → 10.0.0.2 UDP 70 5353 → 5353 Len=28",
		}, "[10.0.0.1 → 10.0.0.2 UDP 70 0.7]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(TsharkPackets(tc.lines)); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestDiffRows(t *testing.T) {
	tests := []struct {
		name, want, got, errContains string
	}{
		{name: "equal", want: "a\nb\n", got: "a\nb\n"},
		{name: "a row differs", want: "a\nb\n", got: "a\nc\n", errContains: "row 2: got c, want b"},
		{name: "a row missing", want: "a\nb\n", got: "a\n", errContains: "row 2: got no row, want b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := DiffRows(tc.want, tc.got)
			if tc.errContains == "" && err != nil || tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)) {
				t.Fatalf("DiffRows: %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
}
