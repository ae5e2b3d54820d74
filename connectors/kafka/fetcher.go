package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetcher is one franz-go client fetching records for some of the
// source's partitions, with a poll loop of its own that routes them to
// their partitions' buffers. franz-go fetches, decompresses and splits
// the records of every partition it consumes from one broker on a single
// goroutine; on bench-kafka (one broker) that goroutine was a third of
// eddy's CPU, serial, and the run could not use both cores. Each fetcher
// has its own goroutine per broker, so a source's partitions are
// decompressed on as many cores as it has fetchers.
//
// The first fetcher is the group's client: its partitions are fetched as
// before. The others consume partitions directly (AddConsumePartitions)
// at the offsets the engine seeks to; the group's client keeps those
// paused (onAssigned pauses every new partition and only the group
// fetcher resumes its own), and its offsets are committed by the group's
// client as every partition's are.
type fetcher struct {
	s      *Source
	cl     *kgo.Client
	direct bool // partitions are added to cl one by one (not the group's client)

	// Guarded by s.mu.
	n     int                  // partitions fetched here
	seeks map[*partition]int64 // for the poll loop to apply
	kicks []*partition         // resumed: restart the fetches before the next poll (see resume)
	wake  context.CancelFunc   // interrupts the current poll
}

// fetchOpts are the fetching options every fetcher's client shares.
func (s *Source) fetchOpts() []kgo.Opt {
	iso := kgo.ReadCommitted()
	if s.cfg.ReadUncommitted {
		iso = kgo.ReadUncommitted()
	}
	pools := newFetchPools()
	return []kgo.Opt{
		kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.WithPools(pools), kgo.WithDecompressor(newDecompressor(pools)),
	}
}

// newDirectFetcher makes a fetcher of its own client, which consumes no
// partition until one is added.
func (s *Source) newDirectFetcher() (*fetcher, error) {
	cl, err := s.cfg.NewClient(append(s.fetchOpts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}))...)
	if err != nil {
		return nil, err
	}
	return &fetcher{s: s, cl: cl, direct: true}, nil
}

// pickFetcher is the fetcher with the fewest partitions; s.mu is held.
func (s *Source) pickFetcher() *fetcher {
	f := s.fetchers[0]
	for _, g := range s.fetchers[1:] {
		if g.n < f.n {
			f = g
		}
	}
	f.n++
	return f
}

// loop is the fetcher's poll loop: it applies seeks between polls and
// routes fetched records to their partitions' buffers.
func (f *fetcher) loop(ctx context.Context) {
	s := f.s
	var lastErr time.Time
	for {
		s.mu.Lock()
		seeks, kicks := f.seeks, f.kicks
		f.seeks, f.kicks = nil, nil
		pctx, cancel := context.WithCancel(ctx)
		f.wake = cancel
		s.mu.Unlock()
		if len(seeks) > 0 {
			f.applySeeks(seeks)
		}
		if len(kicks) > 0 {
			f.restartFetches(kicks)
		}
		fs := f.cl.PollRecords(pctx, 10000)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, part int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			if time.Since(lastErr) > 5*time.Second {
				lastErr = time.Now()
				s.cfg.Logger.Warn("kafka: fetch failed; retrying with backoff", "topic", topic, "partition", part, "err", err)
			}
		})
		s.mu.Lock()
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			// A partition fetched here before it was revoked may have been
			// assigned again since, to another fetcher: its records are
			// that fetcher's to bring.
			if p := s.parts[tp{fp.Topic, fp.Partition}]; p != nil && p.f == f {
				p.add(fp.FetchPartition)
			} else {
				recycle(fp.Records) // no longer assigned here
			}
		})
		s.mu.Unlock()
	}
}

// applySeeks points the fetches of the partitions at their new offsets.
// It runs between polls, and SetOffsets drops what was buffered for the
// old ones, so nothing fetched before a seek reaches a partition after it.
// A direct fetcher's partition is added at its first seek.
func (f *fetcher) applySeeks(seeks map[*partition]int64) {
	set := map[string]map[int32]kgo.EpochOffset{}
	add := map[string]map[int32]kgo.Offset{}
	resume := map[string][]int32{}
	f.s.mu.Lock()
	for p, off := range seeks {
		if p.gone {
			continue // revoked before its seek applied: fetch nothing more
		}
		p.dropBuf()
		p.next, p.pos, p.seeked = off, off, true
		p.seekedTo()
		p.full = false
		t := p.tp
		if f.direct && !p.added {
			p.added = true
			if add[t.topic] == nil {
				add[t.topic] = map[int32]kgo.Offset{}
			}
			add[t.topic][t.part] = kgo.NewOffset().At(off)
		} else {
			if set[t.topic] == nil {
				set[t.topic] = map[int32]kgo.EpochOffset{}
			}
			set[t.topic][t.part] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
		resume[t.topic] = append(resume[t.topic], t.part)
	}
	f.s.mu.Unlock()
	if len(add) > 0 {
		f.cl.AddConsumePartitions(add)
	}
	f.cl.SetOffsets(set)
	f.cl.ResumeFetchPartitions(resume)
	for p := range seeks {
		p.signal()
		p.seekDone()
	}
}

// pause and resume stop and restart fetching a partition whose buffer
// filled up; s.mu is held.
func (f *fetcher) pause(p *partition) {
	f.cl.PauseFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.part}})
}

// A fetch request names the partitions that were fetchable when it went
// out, and the broker holds it for up to FetchMaxWait when none of them
// has records (each at its end). A partition resumed meanwhile is fetched
// only after that fetch returns: its reader, its buffer drained, waited
// up to 500ms (bench-kafka's runs, near their end, when a partition was
// paused with a full buffer while its fetcher's other one had reached
// its end). So a resume while every other partition the fetcher fetches
// is at its end has the poll loop restart the fetches (kick).
func (f *fetcher) resume(p *partition) {
	f.cl.ResumeFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.part}})
	if f.longPolling(p) {
		f.kicks = append(f.kicks, p)
		if f.wake != nil {
			f.wake()
		}
	}
}

// longPolling says whether the fetcher's current fetch may be one the
// broker holds: every partition it fetches other than p is at its end as
// last fetched or listed (and there is one); s.mu is held.
func (f *fetcher) longPolling(p *partition) bool {
	any := false
	for _, q := range f.s.parts {
		if q == p || q.f != f || q.gone || !q.seeked || q.full {
			continue
		}
		if q.end < 0 || q.next < q.end {
			return false
		}
		any = true
	}
	return any
}

// restartFetches points the resumed partitions ps at the offsets they are
// fetched from already, p.next: SetOffsets ends the fetches in flight
// (and drops what the client buffered, fetched again from where it was),
// so the next fetch names every fetchable partition.
func (f *fetcher) restartFetches(ps []*partition) {
	set := map[string]map[int32]kgo.EpochOffset{}
	f.s.mu.Lock()
	for _, p := range ps {
		if p.gone || p.f != f || !p.seeked || (f.direct && !p.added) {
			continue // revoked or sought since: fetched as that left it
		}
		if set[p.tp.topic] == nil {
			set[p.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		set[p.tp.topic][p.tp.part] = kgo.EpochOffset{Epoch: -1, Offset: p.next}
	}
	f.s.mu.Unlock()
	if len(set) == 0 {
		return
	}
	f.cl.SetOffsets(set)
	f.s.fetchRestarts.Add(1)
}

// unfetch stops a direct fetcher's fetching of partitions that are gone
// (closed: applySeeks adds them no more); s.mu is not held.
func (s *Source) unfetch(ps []*partition) {
	s.mu.Lock()
	var rm []*partition
	for _, p := range ps {
		if p.f != nil && p.f.direct && p.added {
			rm = append(rm, p)
		}
	}
	s.mu.Unlock()
	for _, p := range rm {
		p.f.cl.RemoveConsumePartitions(map[string][]int32{p.tp.topic: {p.tp.part}})
	}
}

// closeFetchers closes the fetchers' clients.
func closeFetchers(fs []*fetcher) {
	var cls []*kgo.Client
	for _, f := range fs {
		if f != nil {
			cls = append(cls, f.cl)
		}
	}
	closeClients(cls...)
}

// closeClients closes the clients all at once: a group's client leaves
// the group (a round trip), and each client closes its connections.
func closeClients(cls ...*kgo.Client) {
	var wg sync.WaitGroup
	for _, cl := range cls {
		if cl != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl.Close()
			}()
		}
	}
	wg.Wait()
}
