package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSource("kafka", func(t connectors.Target) (connectors.Source, error) { return OpenSource(t) },
		append(connParams, "group", "start", "start-time", "ignore-committed", "isolation", "instance",
			"batch", "buffer", "poll", "session-timeout", "streams", "fetchers")...)
	connectors.RegisterSink("kafka", func(t connectors.Target) (connectors.Sink, error) { return OpenSink(t) },
		append(connParams, "exactly-once", "transactional-id", "pipeline", "source-group", "format")...)
	connectors.DeclareReach("kafka", connectors.Reach{PathParams: []string{"tls-ca"}})
}

// SourceConfig is what a kafka:// source reads and how.
type SourceConfig struct {
	Conn
	// Group is the consumer group the source joins; default "eddy." and
	// the topics joined by "+".
	Group string
	// Start is where a partition with no checkpointed position and no
	// committed offset begins: "earliest" (default), "latest" or an
	// offset. StartTime, when set, wins: the first offset at or after it.
	Start     string
	StartTime time.Time
	// IgnoreCommitted skips the group's committed offsets, so Start decides
	// (replays from an offset or a time).
	IgnoreCommitted bool
	// ReadUncommitted also reads records of open and aborted transactions;
	// the default reads only committed ones (read_committed).
	ReadUncommitted bool
	// Batch is the most records one Read returns (default 2000); Buffer
	// the records held per partition before its fetching pauses (default
	// 20000); Poll how long a quiet Read waits before it says caught up
	// (default 200ms).
	Batch, Buffer int
	Poll          time.Duration
	// Instance makes the member static (group.instance.id): a process
	// restarted with the same instance gets its partitions back at once,
	// without waiting for the dead one's session to time out.
	Instance string
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (killed, cut off) before it hands its partitions to the
	// others; 0 keeps Kafka's default, 45s.
	SessionTimeout time.Duration
	// Upstreams names the streams that write the source's repartition
	// topics (RepartitionWriter's From): a partition's event time waits
	// for each of them.
	Upstreams []string
	// Fetchers is how many franz-go clients fetch the assigned partitions,
	// each on goroutines of its own (default: GOMAXPROCS, at most 4);
	// a partition is fetched by one of them.
	Fetchers int
	// ClientID, when set, is the group client's client id, which the
	// group's description lists with each member (a stage topic's writer
	// names itself so: StageWriterClientID).
	ClientID string
	Logger   *slog.Logger
}

func (c *SourceConfig) defaults() error {
	if len(c.Topics) == 0 {
		return fmt.Errorf("no topic: write kafka://HOST:PORT/TOPIC")
	}
	if c.Group == "" {
		c.Group = "eddy." + strings.Join(c.Topics, "+")
	}
	for _, t := range c.Topics {
		if IsRepartitionTopic(t) && len(c.Upstreams) == 0 {
			return fmt.Errorf("topic %s is a repartition topic: name the streams that write it with streams=ID,… (each partition's event time waits for all of them)", t)
		}
	}
	if c.Start == "" {
		c.Start = "earliest"
	}
	if c.Start != "earliest" && c.Start != "latest" {
		if n, err := strconv.ParseInt(c.Start, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("start=%q: want earliest, latest or an offset", c.Start)
		}
	}
	if c.Batch <= 0 {
		c.Batch = 2000
	}
	if c.Buffer <= 0 {
		c.Buffer = 20000
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Fetchers <= 0 {
		c.Fetchers = min(runtime.GOMAXPROCS(0), 4)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// OpenSource opens the source a kafka:// target names. Parameters: group,
// start=earliest|latest|OFFSET, start-time=RFC3339, ignore-committed=true,
// isolation=read_committed|read_uncommitted, instance (static membership),
// session-timeout, batch, buffer, poll, streams (a repartition topic's
// upstream streams), fetchers and the connection's (see ParseConn).
func OpenSource(t connectors.Target) (*Source, error) {
	conn, err := ParseConn(t)
	if err != nil {
		return nil, err
	}
	c := SourceConfig{Conn: conn, Group: t.Params.Get("group"), Start: t.Params.Get("start"), Instance: t.Params.Get("instance")}
	if st := t.Params.Get("start-time"); st != "" {
		if c.StartTime, err = time.Parse(time.RFC3339, st); err != nil {
			return nil, fmt.Errorf("start-time=%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", st)
		}
	}
	c.IgnoreCommitted = t.Params.Get("ignore-committed") == "true"
	iso, err := t.Choice("isolation", "read_committed", "read_committed", "read_uncommitted")
	if err != nil {
		return nil, err
	}
	c.ReadUncommitted = iso == "read_uncommitted"
	batch, err := t.IntParam("batch", 0, 1)
	if err != nil {
		return nil, err
	}
	buffer, err := t.IntParam("buffer", 0, 1)
	if err != nil {
		return nil, err
	}
	fetchers, err := t.IntParam("fetchers", 0, 1)
	if err != nil {
		return nil, err
	}
	c.Batch, c.Buffer, c.Fetchers = int(batch), int(buffer), int(fetchers)
	if c.Poll, err = t.DurationParam("poll", 0); err != nil {
		return nil, err
	}
	if c.SessionTimeout, err = t.DurationParam("session-timeout", 0); err != nil {
		return nil, err
	}
	if v := t.Params.Get("streams"); v != "" {
		c.Upstreams = strings.Split(v, ",")
	}
	return NewSource(c)
}

// NewSource returns a source that joins c.Group when started.
func NewSource(c SourceConfig) (*Source, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	adm, err := c.NewClient()
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: c, admCl: adm, adm: kadm.NewClient(adm), parts: map[tp]*partition{}, closed: make(chan struct{}), joined: make(chan struct{})}
	// Here, not in Start: the engine starts the source on a goroutine of
	// its own, and a checkpoint of no partitions may complete (and call
	// Checkpointed) before Start has checked the topics.
	s.obsCond = sync.NewCond(&s.obsMu)
	return s, nil
}

type tp struct {
	topic string
	part  int32
}

func (t tp) id() string { return "kafka:" + t.topic + "/" + strconv.Itoa(int(t.part)) }

// Source is a kafka:// source: a member of a consumer group whose assigned
// partitions become the engine's partitions. Its fetchers (fetcher.go)
// share the partitions; each fetcher's poll loop routes its records to
// per-partition buffers, and a partition whose buffer is full is paused
// until its reader catches up.
type Source struct {
	cfg   SourceConfig
	admCl *kgo.Client
	adm   *kadm.Client
	cl    *kgo.Client
	// groupCl is cl once Start has made it, for the cluster's calls
	// (Member, Remove) from other goroutines.
	groupCl atomic.Pointer[kgo.Client]
	// changelogTxn is the transactional id of the source's changelog, once
	// opened (Member).
	changelogTxn atomic.Pointer[string]
	l            connectors.Listener
	ctx          context.Context

	mu       sync.Mutex
	parts    map[tp]*partition
	fetchers []*fetcher // the group's client first

	obsMu   sync.Mutex
	obsCond *sync.Cond
	latest  connectors.Checkpoint // the newest checkpoint seen

	commitMu  sync.Mutex
	committed map[tp]int64 // what this member committed last

	joined     chan struct{} // closed at the first assignment
	joinedOnce sync.Once

	// given counts the partitions given up so far, revoked or lost: a
	// transaction open when one was given up may be fenced by its next
	// owner (see refusal).
	given atomic.Int64

	// startListings counts the listings of where partitions start
	// (startOffsets).
	startListings atomic.Int64
	// fetchRestarts counts the fetchers' restarts of their fetches for a
	// resumed partition (fetcher.resume).
	fetchRestarts atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
	stopLoop  context.CancelFunc
	loops     sync.WaitGroup // the fetchers' poll loops
}

var (
	_ connectors.Source             = (*Source)(nil)
	_ connectors.CheckpointObserver = (*Source)(nil)
)

// Start checks that the topics exist, joins the group and returns; the
// group's assignments reach l as they happen.
func (s *Source) Start(ctx context.Context, l connectors.Listener) error {
	if err := checkTopics(ctx, s.adm, s.cfg.Conn); err != nil {
		return err
	}
	s.l, s.ctx = l, ctx
	opts := append(s.fetchOpts(),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	if s.cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(s.cfg.SessionTimeout))
	}
	if s.cfg.Instance != "" {
		opts = append(opts, kgo.InstanceID(s.cfg.Instance))
	}
	if s.cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(s.cfg.ClientID))
	}
	// The direct fetchers first: the group's client hands out partitions
	// as soon as it exists.
	fs := []*fetcher{{s: s}}
	for range s.cfg.Fetchers - 1 {
		f, err := s.newDirectFetcher()
		if err != nil {
			closeFetchers(fs[1:])
			return err
		}
		fs = append(fs, f)
	}
	s.mu.Lock()
	s.fetchers = fs
	s.mu.Unlock()
	cl, err := s.cfg.NewClient(opts...)
	if err != nil {
		closeFetchers(fs[1:])
		return err
	}
	s.mu.Lock()
	fs[0].cl = cl
	s.mu.Unlock()
	s.cl = cl
	s.groupCl.Store(cl)
	running.Store(s.cfg.Group, s)
	lctx, stop := context.WithCancel(context.Background())
	s.stopLoop = stop
	for _, f := range fs {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			f.loop(lctx)
		}()
	}
	// Hand over the first assignment before returning, as Start promises
	// for the partitions it knows; a member the group gives nothing to
	// goes on after a while.
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-s.joined:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// errMissingTopic says that topic t does not exist on c's cluster, and how
// to create it.
func errMissingTopic(c Conn, t string) error {
	brokers := strings.Join(c.Brokers, ",")
	return fmt.Errorf("kafka %s: topic %q does not exist (create it with `eddy topics create %s --partitions N --brokers %s`)", brokers, t, t, brokers)
}

// checkTopics turns an unreachable cluster or a missing topic into one
// clear error before anything joins a group.
func checkTopics(ctx context.Context, adm *kadm.Client, c Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, c.Topics...)
	if err != nil {
		return c.Explain(err)
	}
	for _, t := range c.Topics {
		td, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return errMissingTopic(c, t)
		case td.Err != nil:
			return fmt.Errorf("kafka %s: topic %q: %w", strings.Join(c.Brokers, ","), t, td.Err)
		}
	}
	return nil
}

func (s *Source) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// onAssigned pauses the new partitions until the engine has seeked them
// (to its checkpoint, or to the group's offset), then hands them over.
func (s *Source) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	if s.isClosed() {
		return
	}
	cl.PauseFetchPartitions(assigned)
	member, _ := cl.GroupMetadata()
	var ps []*partition
	s.mu.Lock()
	for topic, parts := range assigned {
		for _, n := range parts {
			p := newPartition(s, tp{topic, n})
			p.member = member
			p.f = s.pickFetcher()
			s.parts[p.tp] = p
			ps = append(ps, p)
		}
	}
	s.listStarts(ps)
	s.mu.Unlock()
	for _, p := range ps {
		s.cfg.Logger.Debug("kafka partition assigned", "partition", p.id)
		s.l.Assign(p)
	}
	s.joinedOnce.Do(func() { close(s.joined) })
}

// onRevoked has the engine checkpoint and stop each revoked partition,
// then commits the offsets of that checkpoint so the next owner starts
// exactly where this one stopped. A partition assigned to an earlier
// member id of this source is lost instead: the group dropped that member
// (a join answered UNKNOWN_MEMBER_ID and franz-go rejoined under a new
// id, then revokes what the old one held), so the partition may have had
// another owner since, and no checkpoint of it may commit.
func (s *Source) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	member, _ := cl.GroupMetadata()
	kept, lost := map[string][]int32{}, map[string][]int32{}
	s.mu.Lock()
	for topic, parts := range revoked {
		for _, n := range parts {
			if p := s.parts[tp{topic, n}]; p != nil && p.member != member {
				lost[topic] = append(lost[topic], n)
			} else {
				kept[topic] = append(kept[topic], n)
			}
		}
	}
	s.mu.Unlock()
	if len(lost) > 0 {
		s.cfg.Logger.Warn("kafka: partitions revoked after this node rejoined the group under a new member id are lost, not handed over", "partitions", lost, "member", member)
		s.handOver(lost, true)
	}
	s.handOver(kept, false)
}

// onLost stops the lost partitions without a checkpoint or a commit.
func (s *Source) onLost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	if hold := holdLost.Load(); hold != nil {
		(*hold)()
	}
	s.handOver(lost, true)
}

// holdLost, when set (by tests), runs when the group client tells of lost
// partitions, before the source hears of it: a test holds it to play a
// node paused past its session, which commits before it learns that its
// partitions moved (its member id and generation are still the old ones).
var holdLost atomic.Pointer[func()]

func (s *Source) handOver(m map[string][]int32, lost bool) {
	if s.isClosed() || len(m) == 0 {
		return
	}
	var ps []*partition
	s.mu.Lock()
	for topic, parts := range m {
		for _, n := range parts {
			if p := s.parts[tp{topic, n}]; p != nil {
				// Read no further: the checkpoint that stops the partition
				// then covers exactly what was read, p.pos.
				p.frozen = true
				p.lost = p.lost || lost
				p.signal()
				ps = append(ps, p)
			}
		}
	}
	s.mu.Unlock()
	s.given.Add(int64(len(ps))) // before the next owner can have them
	if !lost {
		// Let a checkpoint cover everything read before the engine stops
		// the partitions. The barrier that settles a revoke may be a mere
		// trigger, whose results are emitted but not checkpointed; with
		// reads stopped and checkpointed first, what was emitted and what
		// is handed over agree.
		s.waitCheckpointed(ps, 30*time.Second)
	}
	// All at once, so one checkpoint can cover them all.
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lost {
				s.l.Lose(p.id)
			} else {
				s.l.Revoke(p.id)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-s.ctx.Done(): // the run is over: nobody to hand over to
		return
	case <-s.closed:
		return
	}
	if !lost {
		// The engine checkpointed the partitions before Revoke returned,
		// and tells observers on a goroutine of its own: wait for that.
		s.waitCheckpointed(ps, 3*time.Second)
		if err := s.commit(ps); err != nil {
			s.cfg.Logger.Warn("kafka: could not commit the offsets of revoked partitions; the next owner may read some records again", "err", err)
		}
	}
	s.mu.Lock()
	for _, p := range ps {
		delete(s.parts, p.tp)
		p.close()
	}
	s.mu.Unlock()
	s.unfetch(ps)
	s.cfg.Logger.Debug("kafka partitions handed over", "n", len(ps), "lost", lost)
}

// Checkpointed mirrors a complete checkpoint's positions to the group's
// committed offsets, so lag tools see eddy's progress. Badger's positions
// stay authoritative; a failed commit only makes the lag look larger.
func (s *Source) Checkpointed(_ context.Context, cp connectors.Checkpoint) error {
	s.obsMu.Lock()
	if cp.ID > s.latest.ID {
		s.latest = cp
	}
	s.obsCond.Broadcast()
	s.obsMu.Unlock()
	s.mu.Lock()
	ps := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	return s.commit(ps)
}

// waitCheckpointed waits, for at most d, until the newest checkpoint
// observed has every partition of ps at the position its reads reached.
// It can stay short of that when a checkpoint begun before the reads
// stopped was the last one to cover a partition; after d the newest
// checkpoint observed is what counts.
func (s *Source) waitCheckpointed(ps []*partition, d time.Duration) {
	want := map[string]int64{}
	s.mu.Lock()
	for _, p := range ps {
		if p.returned {
			want[p.id] = p.pos
		}
	}
	s.mu.Unlock()
	covered := func() bool {
		for id, pos := range want {
			off, err := decodePos(s.latest.Positions[id])
			if err != nil || off != pos {
				return false
			}
		}
		return true
	}
	t := time.AfterFunc(d, func() {
		s.obsMu.Lock()
		s.obsCond.Broadcast()
		s.obsMu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(d)
	s.obsMu.Lock()
	for !covered() && time.Now().Before(deadline) {
		s.obsCond.Wait()
	}
	s.obsMu.Unlock()
}

// commit commits the latest checkpoint's positions of ps. Commits are
// serialized and never move a partition backwards, and a partition handed
// over is never committed again: an observer call that started before a
// hand-over must not overwrite the offset the next owner starts from.
func (s *Source) commit(ps []*partition) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.obsMu.Lock()
	cp := s.latest
	s.obsMu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, p := range ps {
		raw, ok := cp.Positions[p.id]
		if !ok || p.isGone() {
			continue
		}
		off, err := decodePos(raw)
		if err != nil {
			return err
		}
		if prev, ok := s.committed[p.tp]; ok && off <= prev {
			continue
		}
		if offsets[p.tp.topic] == nil {
			offsets[p.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[p.tp.topic][p.tp.part] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	cl := s.groupCl.Load() // (nil before Start has joined the group)
	if len(offsets) == 0 || cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					if cerr == nil {
						cerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, e)
					}
					continue
				}
				if s.committed == nil {
					s.committed = map[tp]int64{}
				}
				s.committed[tp{t.Topic, p.Partition}] = offsets[t.Topic][p.Partition].Offset
			}
		}
	})
	return cerr
}

// Close leaves the group. The positions of the last checkpoint are
// committed first, so the group's offsets match Badger's.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		if s.cl != nil {
			s.mu.Lock()
			ps := make([]*partition, 0, len(s.parts))
			for _, p := range s.parts {
				ps = append(ps, p)
			}
			s.mu.Unlock()
			// The engine's last checkpoint reaches observers on a goroutine
			// of its own.
			s.waitCheckpointed(ps, time.Second)
			if err := s.commit(ps); err != nil {
				s.cfg.Logger.Warn("kafka: could not commit the last checkpoint's offsets", "err", err)
			}
		}
		close(s.closed)
		if s.stopLoop != nil {
			s.stopLoop()
			s.loops.Wait()
		}
		s.mu.Lock()
		for _, p := range s.parts {
			p.close()
		}
		s.mu.Unlock()
		cls := []*kgo.Client{s.admCl}
		if s.cl != nil {
			running.CompareAndDelete(s.cfg.Group, s)
			s.mu.Lock()
			for _, f := range s.fetchers { // the group's client among them
				cls = append(cls, f.cl)
			}
			s.mu.Unlock()
		}
		closeClients(cls...)
	})
	return nil
}

// requestSeek hands a seek to the poll loop and waits until it is applied.
func (s *Source) requestSeek(ctx context.Context, p *partition, off int64) error {
	done := make(chan struct{})
	s.mu.Lock()
	f := p.f
	if f.seeks == nil {
		f.seeks = map[*partition]int64{}
	}
	f.seeks[p] = off
	p.seekWait = append(p.seekWait, done)
	wake := f.wake
	s.mu.Unlock()
	if wake != nil {
		wake()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("kafka: source closed")
	}
}

// startOffset is where a partition begins without a checkpoint: the
// group's committed offset, else the start policy.
func (s *Source) startOffset(ctx context.Context, t tp) (int64, error) {
	offs, err := s.startOffsets(ctx, []tp{t}, false)
	return offs[t], err
}

// startOffsets is startOffset for several partitions, with one request
// for the committed offsets and one listing per topic. Stable reads the
// committed offsets only when no transaction is committing some (else
// it fails), and fails on a partition's error instead of taking the start
// policy for it.
func (s *Source) startOffsets(ctx context.Context, ts []tp, stable bool) (map[tp]int64, error) {
	s.startListings.Add(1)
	offs := make(map[tp]int64, len(ts))
	topics := map[string]bool{}
	for _, t := range ts {
		topics[t.topic] = true
	}
	if !s.cfg.IgnoreCommitted {
		fctx := ctx
		if stable {
			fctx = kadm.RequireStable(ctx)
		}
		committed, err := s.adm.FetchOffsetsForTopics(fctx, s.cfg.Group, slices.Collect(maps.Keys(topics))...)
		if err != nil {
			return nil, fmt.Errorf("kafka: committed offsets of group %s: %w", s.cfg.Group, err)
		}
		for _, t := range ts {
			o, ok := committed.Lookup(t.topic, t.part)
			if stable && ok && o.Err != nil {
				return nil, fmt.Errorf("kafka: committed offset of group %s, %s/%d: %w", s.cfg.Group, t.topic, t.part, o.Err)
			}
			if ok && o.Err == nil && o.At >= 0 {
				offs[t] = o.At
			}
		}
	}
	for topic := range topics {
		if err := s.listStart(ctx, topic, ts, offs); err != nil {
			return nil, err
		}
	}
	return offs, nil
}

// listStart adds to offs, for each partition of topic in ts that has no
// offset there yet, where the start policy begins it.
func (s *Source) listStart(ctx context.Context, topic string, ts []tp, offs map[tp]int64) error {
	var left []int32
	for _, t := range ts {
		if _, ok := offs[t]; !ok && t.topic == topic {
			left = append(left, t.part)
		}
	}
	if len(left) == 0 {
		return nil
	}
	var (
		listed kadm.ListedOffsets
		err    error
	)
	switch {
	case !s.cfg.StartTime.IsZero():
		listed, err = s.adm.ListOffsetsAfterMilli(ctx, s.cfg.StartTime.UnixMilli(), topic)
	case s.cfg.Start == "earliest":
		listed, err = s.adm.ListStartOffsets(ctx, topic)
	case s.cfg.Start == "latest":
		listed, err = s.adm.ListEndOffsets(ctx, topic)
	default:
		n, _ := strconv.ParseInt(s.cfg.Start, 10, 64)
		for _, part := range left {
			offs[tp{topic, part}] = n
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("kafka: list offsets of %s: %w", topic, err)
	}
	var ends kadm.ListedOffsets
	for _, part := range left {
		o, ok := listed.Lookup(topic, part)
		if !ok || o.Err != nil {
			return fmt.Errorf("kafka: list offsets of %s/%d: %v", topic, part, o.Err)
		}
		if o.Offset < 0 { // no record at or after the time: the end
			if ends == nil {
				if ends, err = s.adm.ListEndOffsets(ctx, topic); err != nil {
					return err
				}
			}
			e, _ := ends.Lookup(topic, part)
			o.Offset = e.Offset
		}
		offs[tp{topic, part}] = o.Offset
	}
	return nil
}

// starts is a listing of where partitions start without a checkpoint
// (startOffsets), begun as they were assigned.
type starts struct {
	done chan struct{}
	offs map[tp]int64
	err  error
}

// listStarts begins, for the newly assigned partitions ps, the listing of
// where they start, which their first Seek(nil) then reads (p.starts):
// one request for the group's offsets and one listing per topic at the
// assignment, instead of each partition's own pair when the engine seeks
// it, which made the seeks, and the fetches each of them restarts, come
// one by one. The group's offsets are read stable: one that a transaction
// (an exactly-once sink's, the previous owner's) is still committing
// fails the listing, and the seek lists on its own, as before. s.mu is
// held.
func (s *Source) listStarts(ps []*partition) {
	if len(ps) == 0 {
		return
	}
	st := &starts{done: make(chan struct{})}
	ts := make([]tp, len(ps))
	for i, p := range ps {
		ts[i] = p.tp
		p.starts = st
	}
	go func() {
		defer close(st.done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st.offs, st.err = s.startOffsets(ctx, ts, true)
	}()
}

// endOffset is where the partition ends now: the last stable offset with
// read_committed, the high watermark otherwise.
func (s *Source) endOffset(ctx context.Context, t tp) (int64, error) {
	var (
		listed kadm.ListedOffsets
		err    error
	)
	if s.cfg.ReadUncommitted {
		listed, err = s.adm.ListEndOffsets(ctx, t.topic)
	} else {
		listed, err = s.adm.ListCommittedOffsets(ctx, t.topic)
	}
	if err != nil {
		return 0, err
	}
	o, ok := listed.Lookup(t.topic, t.part)
	if !ok || o.Err != nil {
		return 0, fmt.Errorf("end offset of %s/%d: %v", t.topic, t.part, o.Err)
	}
	return o.Offset, nil
}

// position is a Kafka partition's place in a checkpoint: the next offset.
type position struct {
	Offset int64 `json:"offset"`
}

func encodePos(off int64) connectors.Position {
	b, _ := json.Marshal(position{off})
	return b
}

func decodePos(raw []byte) (int64, error) {
	var p position
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, fmt.Errorf("kafka: bad position %q: %w", raw, err)
	}
	return p.Offset, nil
}

// running maps a group to the source of this process in it, so an
// exactly-once sink can commit that group's offsets as its member.
var running sync.Map

func sourceOf(group string) *Source {
	if v, ok := running.Load(group); ok {
		return v.(*Source)
	}
	return nil
}

// GroupOf returns the consumer group a kafka:// source URI joins, and
// false when uri is not a Kafka source.
func GroupOf(uri string) (string, bool) {
	t, err := connectors.Parse(uri)
	if err != nil || t.Scheme != "kafka" {
		return "", false
	}
	if g := t.Params.Get("group"); g != "" {
		return g, true
	}
	return "eddy." + strings.ReplaceAll(strings.Trim(t.Path, "/"), ",", "+"), true
}

// WithDefaultGroup gives a kafka:// source URI without a group the
// pipeline's default one, eddy.PIPELINE: every process of a pipeline then
// joins one group (and shares its changelog), and two pipelines reading
// one topic don't split its partitions between them. Other URIs are
// returned as they are.
func WithDefaultGroup(uri, pipeline string) string {
	t, err := connectors.Parse(uri)
	if err != nil || t.Scheme != "kafka" || t.Params.Get("group") != "" || pipeline == "" {
		return uri
	}
	t.Params.Set("group", "eddy."+pipeline)
	return "kafka://" + t.Host + "/" + t.Path + "?" + t.Params.Encode()
}

var _ connectors.PartitionLister = (*Source)(nil)

// AllPartitions names every partition of the source's topics, as the
// brokers' metadata has them now.
func (s *Source) AllPartitions(ctx context.Context) ([]string, error) {
	md, err := s.adm.Metadata(ctx, s.cfg.Topics...)
	if err != nil {
		return nil, s.cfg.Conn.Explain(fmt.Errorf("metadata of %v: %w", s.cfg.Topics, err))
	}
	var ids []string
	for _, t := range s.cfg.Topics {
		td, ok := md.Topics[t]
		if !ok || td.Err != nil {
			return nil, fmt.Errorf("kafka %s: topic %q: %v", strings.Join(s.cfg.Conn.Brokers, ","), t, td.Err)
		}
		for _, p := range td.Partitions.Numbers() {
			ids = append(ids, tp{t, p}.id())
		}
	}
	return ids, nil
}
