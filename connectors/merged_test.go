package connectors_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// groupSource is a source whose partitions a group assigns (it names them
// all, as Kafka does), handing out the ones in give, later, on a
// goroutine of its own.
type groupSource struct {
	all, give []string
	// waiting hears of each read that waits for records
	waiting chan string
	mu      sync.Mutex
	l       connectors.Listener
	closed  bool
}

func (s *groupSource) Start(_ context.Context, l connectors.Listener) error {
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
	go func() {
		for _, id := range s.give {
			l.Assign(&groupPartition{id: id, records: 3, waiting: s.waiting})
		}
	}()
	return nil
}

func (s *groupSource) AllPartitions(context.Context) ([]string, error) { return s.all, nil }

func (s *groupSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// groupPartition yields records records of one byte, then waits (a topic
// at its end).
type groupPartition struct {
	id      string
	records int
	next    int
	waiting chan string
}

func (p *groupPartition) ID() string { return p.id }
func (p *groupPartition) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		return json.Unmarshal(pos, &p.next)
	}
	return nil
}
func (p *groupPartition) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next < p.records {
		p.next++
		end, _ := json.Marshal(p.next)
		return connectors.Batch{Records: []connectors.Record{{Value: []byte(p.id)}}, End: end}, nil
	}
	if p.waiting != nil {
		p.waiting <- p.id
	}
	<-ctx.Done()
	return connectors.Batch{}, ctx.Err()
}
func (p *groupPartition) Describe(pos connectors.Position) string { return string(pos) }
func (p *groupPartition) Close() error                            { return nil }

// A Merged over a group's source takes every partition, names each batch's
// stream, keeps each partition's position, and once a partition is taken
// away its reads fail naming it.
func TestMergedReadsAGroupsEveryPartition(t *testing.T) {
	src := &groupSource{all: []string{"kafka:t/0", "kafka:t/1"}, give: []string{"kafka:t/1", "kafka:t/0"}, waiting: make(chan string, 1)}
	m, err := connectors.NewMergedInputs(context.Background(), []connectors.MergedInput{{Source: src, Name: func(string) string { return "bid" }}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(m.Streams(), " "), "bid@kafka:t/0 bid@kafka:t/1"; got != want {
		t.Fatalf("streams %q, want %q", got, want)
	}
	if err := m.Seek(nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var last connectors.Batch
	for range 6 {
		b, err := m.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b.Source != "bid" || string(b.Records[0].Value) != strings.TrimPrefix(b.Stream, "bid@") {
			t.Fatalf("batch of source %q stream %q holds %q", b.Source, b.Stream, b.Records[0].Value)
		}
		seen[b.Stream]++
		last = b
	}
	if seen["bid@kafka:t/0"] != 3 || seen["bid@kafka:t/1"] != 3 {
		t.Fatalf("read %v, want 3 of each", seen)
	}
	if got, want := m.Describe(last.End), "bid@kafka:t/0: 3; bid@kafka:t/1: 3"; got != want {
		t.Fatalf("position %s, want %s", got, want)
	}
	read := make(chan error, 1)
	go func() {
		_, err := m.Read(context.Background())
		read <- err
	}()
	<-src.waiting // the read waits on kafka:t/0
	src.l.Revoke("kafka:t/1")
	select {
	case err := <-read:
		if err == nil || !strings.Contains(err.Error(), "kafka:t/1 was taken from this process") {
			t.Fatalf("read after a revoke: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a read waiting on its partitions did not end when one was revoked")
	}
	if err := m.Close(); err != nil || !src.closed {
		t.Fatalf("close: %v, source closed %v", err, src.closed)
	}
}

// A Merged given only part of a group's partitions (another process holds
// the rest) refuses to start, naming what it misses.
func TestMergedRefusesPartOfAGroup(t *testing.T) {
	defer func(d time.Duration) { connectors.MergedAssignTimeout = d }(connectors.MergedAssignTimeout)
	connectors.MergedAssignTimeout = 100 * time.Millisecond
	src := &groupSource{all: []string{"kafka:t/0", "kafka:t/1"}, give: []string{"kafka:t/0"}}
	_, err := connectors.NewMergedInputs(context.Background(), []connectors.MergedInput{{Source: src, Name: func(string) string { return "" }}})
	if err == nil || !strings.Contains(err.Error(), "kafka:t/1 (of 2 partitions, 1 missing)") {
		t.Fatalf("got %v", err)
	}
	if !src.closed {
		t.Fatal("the source was left open")
	}
}
