package stdio

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// TestStdinRewindLimit: a rewind further back than the kept lines fails
// with a clear error; one within them replays exactly.
func TestStdinRewindLimit(t *testing.T) {
	s := NewStdin(strings.NewReader(strings.Repeat("0123456789\n", 5000)))
	p := s.Partition.(*stdinPartition)
	p.limit = 100 << 10
	ctx := context.Background()
	var ends []connectors.Position
	for {
		b, err := p.Read(ctx)
		if err != nil {
			break
		}
		ends = append(ends, b.End)
	}
	if err := p.Seek(nil); err == nil || !strings.Contains(err.Error(), "stdin cannot be rewound to line 0: only lines after") {
		t.Fatalf("Seek(nil) far back: %v", err)
	}
	if err := p.Seek(ends[len(ends)-2]); err != nil {
		t.Fatal(err)
	}
	b, err := p.Read(ctx)
	if err != nil || b.Records[len(b.Records)-1].Seq != 5000 {
		t.Fatalf("replayed %+v, %v", b.End, err)
	}
}
