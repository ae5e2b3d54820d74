package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record slices are kept by size class too, from 16 records: a slice given
// back comes back for a later get of its class, even after a get of a
// larger class (one pool for all sizes took the short slice for the large
// batch, found it too short and dropped it).
func TestRecordPoolKeepsEachClass(t *testing.T) {
	for n := 16; n <= 256<<10; n = n*9/8 + 1 {
		c, size := classUp(n)
		if size < n || size > n+n/4+8 || classDown(size) != c {
			t.Fatalf("a slice of %d goes to class %d of %d (class down %d)", n, c, size, classDown(size))
		}
	}
	p := newFetchPools()
	// sync.Pool may drop what it is given (the race detector drops a
	// quarter on purpose): one reuse in 20 tries is enough.
	for range 20 {
		short := p.GetRecords(100)
		p.PutRecords(short[:cap(short)])
		long := p.GetRecords(1000)
		if len(long) != 1000 {
			t.Fatalf("GetRecords(1000) has %d records", len(long))
		}
		again := p.GetRecords(100)
		if &again[0] == &short[0] {
			return
		}
	}
	t.Fatal("a slice of 100 records given back never came back for 100 records after a get of 1000")
}

// A partition's emptied buffer starts over at its array: it keeps no
// pointer to a record taken, and takes records in offset order.
func TestEmptiedBufferReusesItsArray(t *testing.T) {
	s := &Source{cfg: SourceConfig{Batch: 8, Buffer: 1000, ReadUncommitted: true}}
	p := newPartition(s, tp{"t", 0})
	p.seeked = true
	next := int64(0)
	fetch := func(n int) {
		var fp kgo.FetchPartition
		for range n {
			fp.Records = append(fp.Records, &kgo.Record{Offset: next, Value: []byte{byte(next)}})
			next++
		}
		fp.HighWatermark = next
		p.add(fp)
	}
	want := int64(0)
	drain := func() {
		for {
			b, ok := p.take()
			if !ok {
				return
			}
			for _, r := range b.Records {
				if r.Seq != want {
					t.Fatalf("took offset %d, want %d", r.Seq, want)
				}
				want++
			}
			b.Release()
			if b.CaughtUp {
				return
			}
		}
	}
	fetch(20)
	arr := &p.buf[:1][0]
	drain()
	fetch(5) // fits the array: no new one
	if &p.buf[0] != arr {
		t.Fatal("the emptied buffer took a new array")
	}
	for _, r := range p.bufArr[len(p.buf):cap(p.bufArr)] {
		if r != nil {
			t.Fatalf("the array still points at taken record %d", r.Offset)
		}
	}
	drain()
	if want != next {
		t.Fatalf("took %d records of %d", want, next)
	}
}
