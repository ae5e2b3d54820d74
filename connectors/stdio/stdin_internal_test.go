package stdio

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
)

// yLine yields "before\n", n bytes of 'y', then "\nafter\n", without
// holding the long line.
type yLine struct {
	head, tail string
	n          int
}

func (r *yLine) Read(p []byte) (int, error) {
	switch {
	case r.head != "":
		k := copy(p, r.head)
		r.head = r.head[k:]
		return k, nil
	case r.n > 0:
		k := min(r.n, len(p))
		for i := range k {
			p[i] = 'y'
		}
		r.n -= k
		return k, nil
	case r.tail != "":
		k := copy(p, r.tail)
		r.tail = r.tail[k:]
		return k, nil
	}
	return 0, io.EOF
}

// A line on stdin longer than max-record-size is a dead-letter record
// with a preview, its size and byte offset, read without holding it.
func TestStdinLongLine(t *testing.T) {
	const size = 32 << 20
	l := connectortest.Start(t, newStdin(&yLine{head: "before\n", n: size, tail: "\nafter\n"}, 1<<10))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res := connectortest.ReadAll(t, l.Partitions()[0], 0, 0)
	runtime.ReadMemStats(&after)
	recs := res.Records()
	if len(recs) != 3 || string(recs[0].Value) != "before" || string(recs[2].Value) != "after" {
		t.Fatalf("got %d records", len(recs))
	}
	var tl *connectors.TooLongError
	if !errors.As(recs[1].Err, &tl) || tl.Size != size+1 || tl.Offset != 7 || len(recs[1].Value) != connectors.PreviewBytes {
		t.Fatalf("long line: err %v, %d bytes kept", recs[1].Err, len(recs[1].Value))
	}
	if !strings.Contains(tl.Error(), "record of 32 MiB (33554433 bytes) at byte 7 is longer than the maximum record size 1.0 KiB") {
		t.Fatalf("reason: %s", tl)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("reading a 32 MiB line allocated %d KiB", alloc>>10)
	}
}
