package connectors

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLineMax(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		line     string
		tooLong  int64
		err      error
	}{
		{"short", "abc\nrest", 4, "abc\n", 0, nil},
		{"exactly max", "abcd\r\n", 4, "abcd\r\n", 0, nil},
		{"one over", "abcde\n", 4, "abcde", 6, nil},
		{"over at the end of input", "abcde", 4, "abcde", 5, io.EOF},
		{"over, beyond the buffer", strings.Repeat("z", 100) + "\nnext", 20, strings.Repeat("z", 100), 101, nil},
		{"long but allowed, beyond the buffer", strings.Repeat("z", 100) + "\n", 200, strings.Repeat("z", 100) + "\n", 0, nil},
		{"preview is capped", strings.Repeat("p", 3000) + "\n", 10, strings.Repeat("p", PreviewBytes), 3001, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			line, tooLong, err := ReadLine(r, tt.max)
			if string(line) != tt.line || tooLong != tt.tooLong || !errors.Is(err, tt.err) {
				t.Fatalf("got %q, %d, %v; want %q, %d, %v", line, tooLong, err, tt.line, tt.tooLong, tt.err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in          string
		want        int64
		errContains string
	}{
		{"16MiB", 16 << 20, ""},
		{"1KiB", 1024, ""},
		{"4096", 4096, ""},
		{"0", 0, "--max-record-size 0 is outside the allowed range 1 B to 1.0 GiB"},
		{"2GiB", 0, "--max-record-size 2GiB is outside the allowed range"},
		{"lots", 0, `--max-record-size "lots" is not a size such as 16MiB`},
		{"-5", 0, `--max-record-size "-5" is not a size`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseSize("--max-record-size", tt.in, 1, MaxRecordSizeLimit)
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("got %d, %v; want an error containing %q", n, err, tt.errContains)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("got %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}
