package files

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/eddy-stream/eddy/connectors"
)

// lineBlocks gives the lines, previews and sizes connectors.ReadLine gives,
// whatever the file's reads return at a time: here one byte, so that the
// line end of every line around the maximum size arrives in a read of its
// own ("\r" in one, "\n" in the next).
func TestLineBlocksAsReadLine(t *testing.T) {
	const max = 10
	var sb strings.Builder
	for n := range 14 {
		for _, end := range []string{"\n", "\r\n", "\r\r\n"} {
			sb.WriteString(strings.Repeat("a", n) + end)
		}
	}
	sb.WriteString("no end")
	text := sb.String()
	ref := bufio.NewReaderSize(strings.NewReader(text), 16)
	want := readLines(t, func(*batchMem) ([]byte, int64, error) { return connectors.ReadLine(ref, max) })
	lb := newLineBlocks(iotest.OneByteReader(strings.NewReader(text)), newBlockPool())
	defer lb.close()
	got := readLines(t, func(m *batchMem) ([]byte, int64, error) { return lb.next(m, max) })
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lineBlocks:\n%s\nReadLine:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func readLines(t *testing.T, next func(*batchMem) ([]byte, int64, error)) []string {
	t.Helper()
	mem := make(batchMems, 1).get()
	var out []string
	for {
		line, tooLong, err := next(mem)
		if len(line) > 0 || tooLong > 0 {
			out = append(out, fmt.Sprintf("%q %d", line, tooLong))
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
