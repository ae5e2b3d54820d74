package cluster

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/eddy-stream/eddy/internal/nodeauth"
)

// healthProvider is the cluster's membership, a protoactor
// ClusterProvider in the manner of the automanaged one: every node serves
// its health answer on its health port and polls the health ports of every
// peer; the members are the peers that answer with the cluster's name.
//
// It differs from automanaged in what eddy needs from it:
//
//   - It heals. protoactor's member list blocks, for good, the member id
//     of a member that left; a node the others dropped while it was
//     paused or cut off would stay out. So a node's health answer lists
//     the member ids its member list has blocked, and a node that finds
//     its own member id there takes a new one (its incarnation): the
//     others admit it as a new member at their next poll. The member id
//     is the actor system's id and the incarnation, never the bare system
//     id, which the remote checks the blocklist for: the node's own
//     requests are never refused.
//   - It tells dead from slow. A poll refused by the peer's host (nothing
//     listens on its health port: the process is gone) drops the member at
//     once and reports it to onGone, so the Kafka group can let its
//     partitions go without waiting for its session to time out. A peer
//     that does not answer in time (paused, overloaded, cut off by the
//     network) is dropped after downAfter but not reported: it may be alive
//     and still in the group, which decides.
type healthProvider struct {
	name      string
	peers     []string
	every     time.Duration // the poll interval
	downAfter time.Duration // how long a peer may fail to answer before it is dropped
	self      func() healthAnswer
	onGone    func(healthAnswer)     // a member's process is gone (its health port refuses)
	renew     func(by string) string // a live peer has dropped this node's member id: take a new one
	publish   func()                 // serve the new member id
	client    *http.Client
	scheme    string // of the peers' health ports: http:// or https://

	c    *pcluster.Cluster
	stop chan struct{}
	done chan struct{}
	once sync.Once

	peersSeen map[string]*peerSeen // by health endpoint; the poll loop's own
}

// healthAnswer is a node's answer on its health port. The first fields
// are those of automanaged's NodeModel.
type healthAnswer struct {
	ID          string `json:"id"` // the member id: system id and incarnation
	Address     string `json:"address"`
	HealthPort  int    `json:"auto_manage_port"`
	Port        int    `json:"port"`
	ClusterName string `json:"cluster_name"`
	// Blocked are the member ids the node dropped (protoactor never
	// admits them again).
	Blocked []string `json:"blocked,omitempty"`
	// Group is how the node's source's consumer group knows it.
	Group *GroupMember `json:"group,omitempty"`
}

// peerSeen is what the poll loop knows of one health endpoint.
type peerSeen struct {
	last     healthAnswer // its last answer for this cluster
	lastOK   time.Time    // when it gave it
	isMember bool         // among the members the last round reported
}

func newHealthProvider(name string, peers []string, every, downAfter time.Duration, self func() healthAnswer, onGone func(healthAnswer), renew func(string) string, publish func()) *healthProvider {
	return &healthProvider{
		name: name, peers: peers, every: every, downAfter: downAfter, self: self, onGone: onGone, renew: renew, publish: publish,
		client: &http.Client{
			Timeout:   min(downAfter, max(every, time.Second)),
			Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: downAfter}).DialContext, MaxIdleConnsPerHost: 1, DisableKeepAlives: true},
		},
		scheme: "http://", stop: make(chan struct{}), done: make(chan struct{}), peersSeen: map[string]*peerSeen{},
	}
}

// secure makes the polls present the cluster's token and verify the
// peers' certificates, as auth says (see serveHealth).
func (p *healthProvider) secure(auth nodeauth.Config) {
	p.client.Transport = auth.Client(p.client.Transport.(*http.Transport))
	p.scheme = auth.Scheme()
}

// StartMember implements pcluster.ClusterProvider: it polls until Shutdown.
func (p *healthProvider) StartMember(c *pcluster.Cluster) error {
	p.c = c
	go p.loop()
	return nil
}

// StartClient implements pcluster.ClusterProvider; eddy's nodes are all members.
func (p *healthProvider) StartClient(*pcluster.Cluster) error {
	return errors.New("cluster: the health provider has no clients")
}

// Shutdown implements pcluster.ClusterProvider: it stops polling.
func (p *healthProvider) Shutdown(bool) error {
	p.once.Do(func() { close(p.stop) })
	if p.c != nil {
		<-p.done
	}
	return nil
}

func (p *healthProvider) loop() {
	defer close(p.done)
	for {
		p.round()
		select {
		case <-p.stop:
			return
		case <-time.After(p.every):
		}
	}
}

// round polls every peer once and updates the member list; it reports
// the members whose process is gone, and renews this node's member id
// when a live peer has dropped it.
func (p *healthProvider) round() {
	members, gone := p.judge(p.pollAll(), time.Now())
	select {
	case <-p.stop:
		return // leaving: the member list is no longer ours to change
	default:
	}
	p.c.MemberList.UpdateClusterTopology(members)
	me := p.self().ID
	for _, g := range gone {
		if g.ID != me {
			p.onGone(g)
		}
	}
	if by := p.blockedBy(me); by != "" {
		p.renewed(members, me, p.renew(by))
	}
}

// polled is one peer's answer to one poll.
type polled struct {
	a       healthAnswer
	ok      bool // it answered
	refused bool // its host refused the connection: nothing listens there
}

// pollAll polls every peer at once.
func (p *healthProvider) pollAll() []polled {
	results := make([]polled, len(p.peers))
	var wg sync.WaitGroup
	for i, peer := range p.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := p.poll(peer)
			results[i] = polled{a: a, ok: err == nil && a.ClusterName == p.name, refused: errors.Is(err, syscall.ECONNREFUSED)}
		}()
	}
	wg.Wait()
	return results
}

// judge updates what the loop knows of each peer from a round's results
// and returns the members, and the last answers of the members whose
// process is gone: their health port refuses, or answers for another
// process (a restart on the same port).
func (p *healthProvider) judge(results []polled, now time.Time) (members []*pcluster.Member, gone []healthAnswer) {
	for i, peer := range p.peers {
		r, s := results[i], p.peersSeen[peer]
		if r.ok {
			if s != nil && s.isMember && systemOf(s.last.ID) != systemOf(r.a.ID) {
				gone = append(gone, s.last)
				s = nil
			}
			if s == nil {
				s = &peerSeen{}
				p.peersSeen[peer] = s
			}
			s.last, s.lastOK = r.a, now
		}
		if s == nil {
			continue
		}
		if !r.ok && (r.refused || now.Sub(s.lastOK) >= p.downAfter) {
			if s.isMember && r.refused {
				gone = append(gone, s.last)
			}
			delete(p.peersSeen, peer)
			continue
		}
		s.isMember = true
		members = append(members, &pcluster.Member{Id: s.last.ID, Host: s.last.Address, Port: int32(s.last.Port)})
	}
	return members, gone
}

// systemOf is the actor system's id in a member id (the process's).
func systemOf(memberID string) string {
	if i := strings.LastIndexByte(memberID, '.'); i >= 0 {
		return memberID[:i]
	}
	return memberID
}

// renewed puts this node's new member id in the member list in place of
// the old one, whose drop blocks it, before the node serves the new id:
// protoactor's blocklist is read without a lock by each incoming
// connection, and while no peer knows the new id none connects because of
// it.
func (p *healthProvider) renewed(members []*pcluster.Member, old, id string) {
	for _, m := range members {
		if m.Id == old {
			m.Id = id
		}
	}
	p.c.MemberList.UpdateClusterTopology(members)
	p.publish()
}

// poll asks one health endpoint for its answer.
func (p *healthProvider) poll(peer string) (healthAnswer, error) {
	var a healthAnswer
	resp, err := p.client.Get(p.scheme + peer + "/_health")
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("health of %s: %s", peer, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&a)
	return a, err
}

// blockedBy names a live peer that has dropped member id, "" when none
// has.
func (p *healthProvider) blockedBy(id string) string {
	for peer, s := range p.peersSeen {
		if slices.Contains(s.last.Blocked, id) && time.Since(s.lastOK) < p.every+p.downAfter {
			return peer
		}
	}
	return ""
}

// serveHealth answers the health endpoint on ln until it is closed; with
// auth's token, only to polls that carry it, and over TLS with its
// certificate (a poll refused that way is a peer that does not answer,
// never one whose process is gone).
func serveHealth(ln net.Listener, answer func() healthAnswer, auth nodeauth.Config) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer())
	})
	srv := &http.Server{Handler: auth.Guard(mux), ReadHeaderTimeout: 5 * time.Second, TLSConfig: auth.ServerTLS()}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln)
	return srv
}

var _ pcluster.ClusterProvider = (*healthProvider)(nil)
