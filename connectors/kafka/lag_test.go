package kafka

import "testing"

func TestPartitionLag(t *testing.T) {
	p := newPartition(&Source{}, tp{"flows", 3})
	if _, ok := p.Lag(encodePos(10)); ok {
		t.Fatal("a lag before the end is known")
	}
	if _, ok := p.Lag(nil); ok {
		t.Fatal("a lag of no position")
	}
	p.end = 25
	if lag, ok := p.Lag(encodePos(10)); !ok || lag != 15 {
		t.Fatalf("lag = %d, %v; want 15", lag, ok)
	}
	if lag, ok := p.Lag(encodePos(30)); !ok || lag != 0 {
		t.Fatalf("lag past the end = %d, %v; want 0", lag, ok)
	}
	if _, ok := p.Lag([]byte("junk")); ok {
		t.Fatal("a lag of a bad position")
	}
}
