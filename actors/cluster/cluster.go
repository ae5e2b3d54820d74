// Package cluster makes the eddy run processes of one pipeline one cluster,
// with protoactor-go's cluster: membership comes from a provider in the
// manner of protoactor's automanaged one (every node serves a health port
// and polls the health ports of a static list of peers, on one machine or
// on many; see healthProvider), and each node runs a
// well-known actor that answers the other nodes over protoactor's remote:
// its status, and its share of the pipeline's result table.
//
// Kafka, not the cluster, decides which node reads which partition; the
// cluster gives one view of the nodes (eddy status) and answers queries of
// the live state by gathering every node's share and merging them (eddy
// query, GET /state), so a key whose partials are spread over partitions
// owned by several nodes is answered whole.
//
// Messages between nodes are JSON carried in protobuf's well-known
// BytesValue, which protoactor's default protobuf serializer handles
// without generated code.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/nodeauth"
)

// Local is what this node answers for itself; *actors.Handle is one.
type Local interface {
	// Status is the node's own status.
	Status(ctx context.Context) (actors.Status, error)
	// Share is the node's partial accumulators for key ("" for every key)
	// over the partitions it owns, opaque to the cluster, and which
	// partitions they cover.
	Share(ctx context.Context, key string) (actors.Share, error)
	// Merge merges the shares of every node into result rows as a single
	// node's State would answer them.
	Merge(ctx context.Context, key string, shares [][]byte) ([]connectors.Row, error)
}

// DefaultPeers are the health ports the nodes of one machine use when no
// peers are given: each node takes the first free one, and polls them all.
// Nodes of other pipelines on the machine share the range; their cluster
// names keep them apart.
var DefaultPeers = []string{"127.0.0.1:6330-6345"}

// Config says where a node listens and where its peers are.
type Config struct {
	// Name is the cluster's name (see Name): nodes of other clusters
	// polled on the same ports are ignored.
	Name string
	// Host is the address the node's remote listens on and advertises
	// (other nodes must reach it there); default: this machine's entry of
	// Peers, else 127.0.0.1.
	Host string
	// Port is the remote's port; 0 picks a free one.
	Port int
	// AutoManagePort is the port of the node's health endpoint, which the
	// provider serves on every interface; 0 takes the first free port of
	// the entries of Peers that are on this machine.
	AutoManagePort int
	// Peers are the health endpoints (host:port) of every node, this one
	// included; host:LO-HI stands for a range of ports. Default
	// DefaultPeers.
	Peers []string
	// HTTP is the node's status address (eddy run --http), which it
	// advertises in its status.
	HTTP string
	// RefreshTTL is how often the node polls the peers' health ports
	// (default 250ms): a node that stops (its health port refuses) leaves
	// the others' member lists at their next poll.
	RefreshTTL time.Duration
	// DownAfter is how long a peer may go without answering its health
	// port before the others drop it (default 3s): a node paused,
	// overloaded or cut off. It rejoins by itself once it answers again.
	DownAfter time.Duration
	// Group, when set, is the node's membership of its source's consumer
	// group: the nodes tell each other their member ids, and the nodes
	// that see one's process gone remove it from the group at once.
	Group Group
	// Timeout bounds one request to another node (default 5s).
	Timeout time.Duration
	// Logger gets the node's logs; protoactor's own go to it at warning
	// level and above.
	Logger *slog.Logger
	// Remote are options of the remote the nodes talk over (a token and
	// TLS: internal/nodeauth).
	Remote []remote.ConfigOption `json:"-"`
	// Health is what the node's health port asks of the others' polls,
	// and its polls present: the token and certificate of Remote, so a
	// node believes only the health answers of its cluster's nodes.
	Health nodeauth.Config `json:"-"`
}

// Group is a node's membership of the Kafka consumer group its source
// reads in (*kafka.Source is one). Kafka decides which node reads which
// partition; the cluster only tells the group sooner that a node is gone.
type Group interface {
	// Member is how the group knows this node (an empty ID before it has
	// joined).
	Member() GroupMember
	// Remove removes another node's member, whose process is gone, from
	// the group and has this node rejoin, so that the group moves that
	// node's partitions now rather than when its session times out.
	Remove(ctx context.Context, m GroupMember) error
}

// GroupMember is how a node is known to its source's group, as the nodes
// tell each other in their health answers.
type GroupMember = connectors.GroupMember

// Name derives a cluster's name from a pipeline and the Kafka consumer
// group its nodes share ("" for sources without one).
func Name(pipeline, group string) string {
	if group == "" {
		return "eddy/" + pipeline
	}
	return "eddy/" + pipeline + "/" + group
}

// Member is one node of the cluster.
type Member struct {
	// ID is the node's actor system id, new each time it joins.
	ID string `json:"id"`
	// Address is its remote's host:port.
	Address string `json:"address"`
	// Self marks the node that answers.
	Self bool `json:"self,omitempty"`
}

// NodeStatus is one member's answer to a status request.
type NodeStatus struct {
	Member
	// HTTP is the member's --http address.
	HTTP   string         `json:"http,omitempty"`
	Status *actors.Status `json:"status,omitempty"`
	// Error says why the member did not answer; Status is nil then.
	Error string `json:"error,omitempty"`
}

// Status is the cluster's view: every member's status.
type Status struct {
	Cluster  string       `json:"cluster"`
	Pipeline string       `json:"pipeline"`
	Nodes    []NodeStatus `json:"nodes"`
}

// MemberError is a fan-out some members did not answer.
type MemberError struct {
	Cluster string
	Failed  []NodeStatus // Member and Error of each
}

func (e *MemberError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s: ", e.Cluster)
	for i, f := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "node %s at %s did not answer: %s", f.ID, f.Address, f.Error)
	}
	return b.String()
}

// Node is this process's membership in its cluster.
type Node struct {
	cfg      Config
	local    Local
	system   *actor.ActorSystem
	c        *pcluster.Cluster
	manPort  int
	provider *healthProvider
	health   *http.Server
	log      *slog.Logger

	// incarnation counts the node's member ids: a new one each time the
	// others dropped it (see healthProvider). served is the one its health
	// port answers: the new one once its own member list has it.
	incarnation, served atomic.Int64

	leaveOnce sync.Once

	mu      sync.Mutex
	members []Member      // as of the last topology change
	dropped []string      // the member ids that left: protoactor's member list blocks them
	changed chan struct{} // closed at the next topology change
}

const nodeActor = "eddy-node"

// withoutGossip keeps protoactor's gossip from ever sending. eddy reads
// nothing from it: membership comes from the provider's health polls, and
// no node hosts virtual actors (the gossip's consensus and heartbeats are
// for those). And it is racy: each round sends the informer's live state
// entries by reference and the next heartbeat updates them in place while
// the remote is still serializing them (protoactor's cluster.setKey
// against proto.Marshal in the endpoint writer), and all informers of a
// process shuffle their peers with one shared math/rand.Rand. A round
// starts only on the gossip loop's ticker, so a ticker that never fires
// in a process's life leaves the gossip actor answering local requests
// (Leave's "left" key) and sending nothing.
func withoutGossip(c *pcluster.Config) { c.GossipInterval = 100 * 365 * 24 * time.Hour }

// Join starts the node's remote and health endpoint, joins the cluster and
// returns once the node sees itself as a member. local answers the other
// nodes' requests.
//
// A process runs one node: protoactor's remote sets grpc's process-wide
// logger each time it starts (grpclog.SetLoggerV2, which is safe only
// before any gRPC activity), so a second node in the same process races
// with the first one's gRPC goroutines, even after the first has left.
// eddy run joins once; tests start each node in a process of its own.
func Join(ctx context.Context, cfg Config, local Local) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: no name")
	}
	if len(cfg.Peers) == 0 {
		cfg.Peers = DefaultPeers
	}
	peers, err := ExpandPeers(cfg.Peers)
	if err != nil {
		return nil, err
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 250 * time.Millisecond
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = 3 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The health endpoint: the first entry of the peers on this machine
	// whose port is free (listened on by that entry's host), or the port
	// given (on every interface).
	var cands []string
	localHost := ""
	for _, p := range peers {
		h, port, _ := net.SplitHostPort(p)
		if isLocal(h) {
			if h == "localhost" {
				h = "127.0.0.1"
			}
			cands = append(cands, net.JoinHostPort(h, port))
			if localHost == "" || !isLoopback(h) && isLoopback(localHost) {
				localHost = h
			}
		}
	}
	if cfg.Host == "" {
		cfg.Host = localHost
		if cfg.Host == "" {
			cfg.Host = "127.0.0.1"
		}
	}
	if cfg.AutoManagePort > 0 {
		cands = []string{":" + strconv.Itoa(cfg.AutoManagePort)}
	} else if len(cands) == 0 {
		return nil, fmt.Errorf("cluster: no peer in %s is on this machine: list this node's health port among the peers", strings.Join(cfg.Peers, ","))
	}
	var ln net.Listener
	var tried []string
	for _, c := range cands {
		if ln, err = net.Listen("tcp", c); err == nil {
			break
		}
		tried = append(tried, c)
	}
	if ln == nil {
		if len(cands) == 1 {
			return nil, fmt.Errorf("cluster: health port: %w", err)
		}
		return nil, fmt.Errorf("cluster: every health port of the peers on this machine is in use (%s): add ports to the peers", strings.Join(tried, ", "))
	}
	return start(ctx, cfg, peers, ln, local)
}

func start(ctx context.Context, cfg Config, peers []string, ln net.Listener, local Local) (n *Node, err error) {
	port := ln.Addr().(*net.TCPAddr).Port
	log := cfg.Logger.With("cluster", cfg.Name)
	protoLog := slog.New(quietHandler{log.Handler()})
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoLog }))
	n = &Node{cfg: cfg, local: local, system: system, manPort: port, log: log, changed: make(chan struct{})}
	n.incarnation.Store(1)
	n.served.Store(1)
	n.provider = newHealthProvider(cfg.Name, peers, cfg.RefreshTTL, cfg.DownAfter, n.healthAnswer, n.gone, n.renew, n.publish)
	n.provider.secure(cfg.Health)
	rcfg := remote.Configure(cfg.Host, cfg.Port, cfg.Remote...)
	ccfg := pcluster.Configure(cfg.Name, n.provider, disthash.New(), rcfg,
		pcluster.WithRequestTimeout(cfg.Timeout), withoutGossip)
	n.c = pcluster.New(system, ccfg)
	system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pcluster.ClusterTopology); ok {
			n.topology(t)
		}
	})
	defer func() {
		if r := recover(); r != nil {
			system.Shutdown()
			ln.Close()
			err = fmt.Errorf("cluster: starting the node on %s:%d: %v", cfg.Host, cfg.Port, r)
		}
	}()
	n.c.StartMember()
	n.health = serveHealth(ln, n.healthAnswer, cfg.Health)
	if _, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &answerer{n} }), nodeActor); err != nil {
		n.Leave()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// The provider polls its own health port too: the node is a member
	// once it sees itself.
	deadline := time.Now().Add(5*cfg.RefreshTTL + 5*time.Second)
	for !n.sawSelf() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			n.Leave()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("cluster: the node did not see itself at its health port %d: is that port among the peers?", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Info("joined the cluster", "id", n.ID(), "address", system.Address(), "health", port, "members", len(n.Members()))
	return n, nil
}

// topology records the members of a topology change, and logs who joined
// and left. The member list is read from the topology events: reading
// MemberList.Members races with its updates.
func (n *Node) topology(t *pcluster.ClusterTopology) {
	me := n.ID()
	ms := make([]Member, 0, len(t.Members))
	for _, m := range t.Members {
		ms = append(ms, Member{ID: m.Id, Address: m.Address(), Self: m.Id == me})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Address < ms[j].Address })
	n.mu.Lock()
	n.members = ms
	for _, m := range t.Left {
		n.dropped = append(n.dropped, m.Id)
	}
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	for _, m := range t.Joined {
		if m.Id != me {
			n.log.Info("node joined the cluster", "id", m.Id, "address", m.Address(), "members", len(t.Members))
		}
	}
	for _, m := range t.Left {
		n.log.Info("node left the cluster", "id", m.Id, "address", m.Address(), "members", len(t.Members))
	}
}

// healthAnswer is what the node answers on its health port.
func (n *Node) healthAnswer() healthAnswer {
	host, port, _ := n.system.GetHostPort()
	a := healthAnswer{ID: n.memberID(n.served.Load()), Address: host, Port: port, HealthPort: n.manPort, ClusterName: n.cfg.Name}
	n.mu.Lock()
	a.Blocked = slices.Clone(n.dropped)
	n.mu.Unlock()
	if n.cfg.Group != nil {
		m := n.cfg.Group.Member()
		a.Group = &m
	}
	return a
}

// renew takes a new member id: a live peer (by) has dropped this node's
// current one, which protoactor never admits again. The node serves it
// once publish is called; the others admit it under the new id at their
// next poll.
func (n *Node) renew(by string) string {
	old := n.ID()
	inc := n.incarnation.Add(1)
	n.log.Warn("rejoining the cluster: a node dropped this one while it did not answer (paused, overloaded or cut off)", "by", by, "old_id", old, "id", n.ID(), "incarnation", inc)
	return n.ID()
}

// publish serves the node's current member id on its health port.
func (n *Node) publish() { n.served.Store(n.incarnation.Load()) }

// gone hands a member whose process is gone to the source's group, which
// lets its partitions go at once instead of when its session times out.
func (n *Node) gone(a healthAnswer) {
	if n.cfg.Group == nil || a.Group == nil || a.Group.ID == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
		defer cancel()
		if err := n.cfg.Group.Remove(ctx, *a.Group); err != nil {
			n.log.Warn("could not remove a gone node from the group: its partitions move when its session times out", "id", a.ID, "member", a.Group.ID, "err", err)
			return
		}
		n.log.Info("removed a gone node from the group: its partitions move now", "id", a.ID, "address", net.JoinHostPort(a.Address, strconv.Itoa(a.Port)), "member", a.Group.ID)
	}()
}

func (n *Node) topologyChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

func (n *Node) isMember(id string) bool {
	return slices.ContainsFunc(n.Members(), func(m Member) bool { return m.ID == id })
}

func (n *Node) sawSelf() bool {
	for _, m := range n.Members() {
		if m.Self {
			return true
		}
	}
	return false
}

// ID is the node's member id: its actor system's id and its
// incarnation.
func (n *Node) ID() string { return n.memberID(n.incarnation.Load()) }

func (n *Node) memberID(incarnation int64) string {
	return n.system.ID + "." + strconv.FormatInt(incarnation, 10)
}

// Address is the node's remote address.
func (n *Node) Address() string { return n.system.Address() }

// Name is the cluster's name.
func (n *Node) Name() string { return n.cfg.Name }

// HealthPort is the node's health port.
func (n *Node) HealthPort() int { return n.manPort }

// Members lists the cluster's members as this node sees them, by address.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.members)
}

// Leave leaves the cluster and stops the node's remote and health
// endpoint: the others drop it at their next poll. It is the library's
// graceful shutdown less its two-second wait for virtual actors to move,
// of which a node has none.
func (n *Node) Leave() {
	n.leaveOnce.Do(func() {
		n.c.Gossip.SetState(pcluster.GracefullyLeftKey, &emptypb.Empty{})
		n.provider.Shutdown(true)
		n.health.Close()
		n.system.Shutdown()
		n.c.IdentityLookup.Shutdown()
		n.c.Gossip.Shutdown()
		n.c.Remote.Shutdown(false)
		n.log.Debug("left the cluster", "id", n.ID())
	})
}

// Status asks every member for its status. A member that does not answer
// is listed with its Error set: the view is partial, and says so. One that
// leaves the cluster meanwhile is left out.
func (n *Node) Status(ctx context.Context) (Status, error) {
	answers := n.fanOut(ctx, request{Op: "status"})
	st := Status{Cluster: n.cfg.Name}
	for _, a := range answers {
		if a.left {
			continue // gone: not part of the cluster any more
		}
		ns := NodeStatus{Member: a.member, HTTP: a.HTTP, Status: a.Status, Error: a.Error}
		if ns.Status != nil && st.Pipeline == "" {
			st.Pipeline = ns.Status.Pipeline
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	return st, nil
}

// Shares asks every member for its share of key ("" for every key), this
// node's first. A member that does not answer fails the whole call with a
// *MemberError naming it: a merge without its share would be wrong. This
// node's own failure is returned as it is (actors.ErrNoResultTable).
func (n *Node) Shares(ctx context.Context, key string) ([]actors.Share, error) {
	own, err := n.local.Share(ctx, key)
	if err != nil {
		return nil, err
	}
	shares := []actors.Share{own}
	var failed []NodeStatus
	for _, a := range n.fanOut(ctx, request{Op: "share", Key: key, SkipSelf: true}) {
		switch {
		case a.Error != "":
			failed = append(failed, NodeStatus{Member: a.member, Error: a.Error})
		case a.Share == nil:
			failed = append(failed, NodeStatus{Member: a.member, Error: "answered no share (an older eddy?)"})
		default:
			shares = append(shares, *a.Share)
		}
	}
	if len(failed) > 0 {
		return nil, &MemberError{Cluster: n.cfg.Name, Failed: failed}
	}
	return shares, nil
}

// State is the cluster's current result for key ("" for the whole table):
// every member's share, merged by this node. When the shares miss a
// partition (restoring, between owners in a rebalance) or hold one twice
// (moving), the rows come with an *actors.IncompleteError saying which.
func (n *Node) State(ctx context.Context, key string) ([]connectors.Row, error) {
	shares, err := n.Shares(ctx, key)
	if err != nil {
		return nil, err
	}
	return n.merge(ctx, key, shares)
}

// LocalState is this node's own part of the result (GET /state?local=1):
// its share, merged alone. It is incomplete only when a partition of its
// own is restoring or starting; the partitions of other nodes are not
// asked for.
func (n *Node) LocalState(ctx context.Context, key string) ([]connectors.Row, error) {
	own, err := n.local.Share(ctx, key)
	if err != nil {
		return nil, err
	}
	own.All = nil
	return n.merge(ctx, key, []actors.Share{own})
}

// merge merges shares into rows and checks that they cover every
// partition once.
func (n *Node) merge(ctx context.Context, key string, shares []actors.Share) ([]connectors.Row, error) {
	data := make([][]byte, len(shares))
	covers := make([]actors.Cover, len(shares))
	for i, s := range shares {
		data[i], covers[i] = s.Data, s.Cover
	}
	rows, err := n.local.Merge(ctx, key, data)
	if err != nil {
		return nil, err
	}
	return rows, actors.Completeness(covers)
}

// request is what one node asks another.
type request struct {
	Op       string `json:"op"` // status, share
	Key      string `json:"key,omitempty"`
	SkipSelf bool   `json:"-"`
}

// reply is a member's answer.
type reply struct {
	ID      string         `json:"id"`
	Address string         `json:"address"`
	HTTP    string         `json:"http,omitempty"`
	Status  *actors.Status `json:"status,omitempty"`
	Share   *actors.Share  `json:"share,omitempty"`
	Error   string         `json:"error,omitempty"`

	member Member
	left   bool // the member left the cluster before it answered
}

// fanOut asks every member at once (this node directly, without the
// remote) and returns their replies in member order.
func (n *Node) fanOut(ctx context.Context, req request) []reply {
	members := n.Members()
	if !req.SkipSelf && !n.sawSelf() {
		members = append([]Member{{ID: n.ID(), Address: n.system.Address(), Self: true}}, members...)
	}
	out := make([]reply, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.Self && req.SkipSelf {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r reply
			if m.Self {
				r = n.answer(ctx, req)
			} else {
				r = n.ask(ctx, m, req)
			}
			r.member = m
			out[i] = r
		}()
	}
	wg.Wait()
	kept := out[:0]
	for i, r := range out {
		if members[i].Self && req.SkipSelf {
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// ask sends req to member m's well-known actor and waits for its reply.
func (n *Node) ask(ctx context.Context, m Member, req request) reply {
	data, err := json.Marshal(req)
	if err != nil {
		return reply{Error: err.Error()}
	}
	timeout := n.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	fut := n.system.Root.RequestFuture(actor.NewPID(m.Address, nodeActor), wrapperspb.Bytes(data), timeout)
	var res any
	done := make(chan struct{})
	go func() {
		res, err = fut.Result()
		close(done)
	}()
	// A member that leaves meanwhile (killed: its health port stopped
	// answering) won't answer: stop waiting for it.
wait:
	for {
		changed := n.topologyChanged()
		if !n.isMember(m.ID) {
			return reply{Error: "left the cluster", left: true}
		}
		select {
		case <-done:
			break wait
		case <-changed:
		case <-ctx.Done():
			return reply{Error: ctx.Err().Error()}
		}
	}
	switch {
	case errors.Is(err, actor.ErrTimeout):
		return reply{Error: fmt.Sprintf("no answer within %v", timeout)}
	case errors.Is(err, actor.ErrDeadLetter):
		return reply{Error: "unreachable (its remote is down or it runs no eddy node)"}
	case err != nil:
		return reply{Error: err.Error()}
	}
	b, ok := res.(*wrapperspb.BytesValue)
	if !ok {
		return reply{Error: fmt.Sprintf("unexpected answer %T", res)}
	}
	var r reply
	if err := json.Unmarshal(b.Value, &r); err != nil {
		return reply{Error: fmt.Sprintf("bad answer: %v", err)}
	}
	return r
}

// answer answers req for this node.
func (n *Node) answer(ctx context.Context, req request) reply {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	r := reply{ID: n.ID(), Address: n.system.Address(), HTTP: n.cfg.HTTP}
	var err error
	switch req.Op {
	case "status":
		var st actors.Status
		if st, err = n.local.Status(ctx); err == nil {
			r.Status = &st
		}
	case "share":
		var sh actors.Share
		if sh, err = n.local.Share(ctx, req.Key); err == nil {
			r.Share = &sh
		}
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// answerer is the well-known actor every node runs. It answers on a
// goroutine of its own, so a slow engine doesn't hold its mailbox.
type answerer struct{ n *Node }

func (a *answerer) Receive(ctx actor.Context) {
	msg, ok := ctx.Message().(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	root := ctx.ActorSystem().Root
	go func() {
		var req request
		r := reply{ID: a.n.ID(), Address: a.n.system.Address(), HTTP: a.n.cfg.HTTP}
		if err := json.Unmarshal(msg.Value, &req); err != nil {
			r.Error = fmt.Sprintf("bad request: %v", err)
		} else {
			r = a.n.answer(context.Background(), req)
		}
		data, err := json.Marshal(r)
		if err != nil {
			data, _ = json.Marshal(reply{ID: r.ID, Address: r.Address, Error: err.Error()})
		}
		root.Send(sender, wrapperspb.Bytes(data))
	}()
}

// ExpandPeers checks host:port entries and expands host:LO-HI ranges.
func ExpandPeers(peers []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, entry := range peers {
		for _, p := range strings.Split(entry, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			host, ports, err := net.SplitHostPort(p)
			if err != nil || host == "" {
				return nil, fmt.Errorf("peer %q: want HOST:PORT or HOST:LOW-HIGH", p)
			}
			lo, hi, isRange := strings.Cut(ports, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || a < 1 || b > 65535 || b < a || b-a > 255 {
				return nil, fmt.Errorf("peer %q: want HOST:PORT or HOST:LOW-HIGH (at most 256 ports)", p)
			}
			for port := a; port <= b; port++ {
				add(net.JoinHostPort(host, strconv.Itoa(port)))
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no peers")
	}
	return out, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLocal says whether host names this machine: loopback, its host name,
// or one of its interfaces' addresses.
func isLocal(host string) bool {
	if isLoopback(host) {
		return true
	}
	if hn, err := os.Hostname(); err == nil && strings.EqualFold(hn, host) {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resolved, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return false
		}
		ips = ips[:0]
		for _, a := range resolved {
			ips = append(ips, a.IP)
		}
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			for _, ip := range ips {
				if ipn.IP.Equal(ip) {
					return true
				}
			}
		}
	}
	return false
}

// quietHandler passes protoactor's logs to the node's logger at debug
// level (eddy -v shows them; a peer going away makes its remote and gossip
// complain loudly). The node logs members joining and leaving itself.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	d := slog.NewRecord(r.Time, slog.LevelDebug, "protoactor: "+r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
	return h.Handler.Handle(ctx, d)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
