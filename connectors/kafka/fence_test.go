package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// groupEvents is a listener that tells the test what the group did.
type groupEvents struct {
	assigned, revoked, lost chan string
}

func newGroupEvents() *groupEvents {
	return &groupEvents{assigned: make(chan string, 16), revoked: make(chan string, 16), lost: make(chan string, 16)}
}

func (g *groupEvents) Assign(p connectors.Partition) { g.assigned <- p.ID() }
func (g *groupEvents) Revoke(id string)              { g.revoked <- id }
func (g *groupEvents) Lose(id string)                { g.lost <- id }

func waitEvent(t *testing.T, c chan string, what string) string {
	t.Helper()
	select {
	case id := <-c:
		return id
	case <-time.After(time.Minute):
		t.Fatalf("no %s within a minute", what)
		return ""
	}
}

// The interleaving of issue 17 (TestClusterHealsAfterAPause counted too
// little): a node's checkpoint is under way when the group drops the node
// (paused past its session) and gives its partition to another; the node
// loses the partition and rejoins the group under a new member id; then
// the checkpoint's changelog commit goes on. It must be refused: its
// state and marker are from before the other node's, and committed after
// them they would overwrite that node's counts for good. The group's
// fence (the offsets committed in the transaction) let it through when it
// named the node's new member id.
func TestChangelogCommitOfALostPartitionIsRefusedAfterARejoin(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	t.Cleanup(func() { deleteChangelogTopic(t, brokers, ChangelogTopic(group, topic)) })
	open := func() *Source {
		target, err := connectors.Parse("kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + group + "&session-timeout=6s")
		if err != nil {
			t.Fatal(err)
		}
		s, err := OpenSource(target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := t.Context()
	b, bEvents := open(), newGroupEvents()
	if err := b.Start(ctx, bEvents); err != nil {
		t.Fatal(err)
	}
	id := waitEvent(t, bEvents.assigned, "assignment of b")
	clog, err := b.Changelog("zombie")
	if err != nil {
		t.Fatal(err)
	}
	defer clog.Close()
	// A second member, a (a plain group consumer: one source of a group
	// runs in a process): the sticky assignor leaves it nothing for now.
	aAssigned := make(chan string, 16)
	a, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.SessionTimeout(6*time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			for topic, parts := range m {
				for _, n := range parts {
					aAssigned <- tp{topic, n}.id()
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	go func() {
		for ctx.Err() == nil && !a.PollFetches(ctx).IsClientClosed() {
		}
	}()
	waitGroupStable(t, brokers, group, 2)
	oldMember := b.Member().ID

	// b's checkpoint is under way: it wrote the partition's state.
	clog.Write(id, []byte("state/k"), []byte("b's count before the pause"))

	// The group drops b (as when its session times out) and a gets the
	// partition; b hears of it (its partition is lost) and rejoins.
	removeMember(t, brokers, group, oldMember)
	waitEvent(t, bEvents.lost, "loss of b's partition")
	if got := waitEvent(t, aAssigned, "assignment of a"); got != id {
		t.Fatalf("a was assigned %s, want %s", got, id)
	}
	for deadline := time.Now().Add(time.Minute); b.Member().ID == oldMember || b.Member().ID == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b did not rejoin the group within a minute (member %q)", b.Member().ID)
		}
	}
	waitGroupStable(t, brokers, group, 2)

	// b's checkpoint commits now: it must be refused.
	_, err = clog.Commit(ctx, map[string]connectors.ChangelogMarker{id: {Checkpoint: 7, Position: encodePos(1), Node: "b"}})
	if !errors.Is(err, connectors.ErrNotMember) {
		t.Fatalf("the commit of partition %s after b lost it and rejoined as %s (was %s): %v, want it refused with ErrNotMember",
			id, b.Member().ID, oldMember, err)
	}
}

// removeMember removes member from group, as the coordinator does when its
// session times out.
func removeMember(t *testing.T, brokers []string, group, member string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = member
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(t.Context(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) == 1 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("remove member %s from group %s: %v", member, group, err)
	}
}

// waitGroupStable waits until group is stable with n members.
func waitGroupStable(t *testing.T, brokers []string, group string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(t.Context(), cl)
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].State == "Stable" && len(resp.Groups[0].Members) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s is not stable with %d members after a minute", group, n)
		}
	}
}

func deleteChangelogTopic(t *testing.T, brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{topic}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = &topic
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req.RequestWith(ctx, cl)
}
