package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-stream/eddy/connectors"
)

// Member is how the source's consumer group knows it: its member id (""
// before it has joined), its group instance id (static membership, else
// "") and its changelog's transactional id. The cluster's nodes tell each
// other these.
func (s *Source) Member() connectors.GroupMember {
	m := connectors.GroupMember{Instance: s.cfg.Instance}
	if cl := s.groupCl.Load(); cl != nil {
		m.ID, _ = cl.GroupMetadata()
	}
	if txn := s.changelogTxn.Load(); txn != nil {
		m.Txn = *txn
	}
	return m
}

// Remove removes another member, whose process is known to be gone, from
// the group on its behalf (a LeaveGroup naming it), and has this member
// rejoin at once: the group reassigns the gone member's partitions now,
// not when its session times out. A member the group no longer has (it
// left, or another node removed it first) is no error. It then aborts the
// changelog transaction the gone member may have left open (see
// fenceChangelog).
func (s *Source) Remove(ctx context.Context, gone connectors.GroupMember) error {
	if err := s.leaveFor(ctx, gone.ID, gone.Instance); err != nil {
		return err
	}
	return s.fenceChangelog(ctx, gone)
}

// fenceChangelog aborts the transaction a gone member's changelog producer
// left open, by starting a producer with its transactional id, sooner
// than the next owner of its partitions would (fencePrevious); left open,
// its offsets in the group stay pending until it times out
// (changelogTxnTimeout). Only a random transactional id is fenced: one
// made from a group instance id is also the next process's of that
// instance, which fences its predecessor itself, and which this must
// never fence.
func (s *Source) fenceChangelog(ctx context.Context, gone connectors.GroupMember) error {
	if gone.Txn == "" || gone.Instance != "" {
		return nil
	}
	return retryTransient(ctx, fmt.Sprintf("kafka: abort the changelog transaction of gone member %s (%s)", gone.ID, gone.Txn),
		func(ctx context.Context) error { return fenceTxnID(ctx, s.cfg.Conn, gone.Txn) })
}

// leaveFor sends a LeaveGroup for member id (and instance) of the group,
// and has this member rejoin.
func (s *Source) leaveFor(ctx context.Context, id, instance string) error {
	cl := s.groupCl.Load()
	if cl == nil {
		return errors.New("kafka: not in the group yet")
	}
	if me, _ := cl.GroupMetadata(); id != "" && id == me {
		return fmt.Errorf("kafka: refusing to remove this node's own member %s from group %s", id, s.cfg.Group)
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = s.cfg.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = id
	if instance != "" {
		m.InstanceID = &instance
	}
	reason := "eddy: the member's process is gone (its cluster health port refuses connections)"
	m.Reason = &reason
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) == 1 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	cl.ForceRebalance()
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.FencedInstanceID) {
		return fmt.Errorf("kafka: group %s: remove member %s: %w", s.cfg.Group, id, err)
	}
	return nil
}

// holder says under which member id this source holds every Kafka
// partition of positions, and the group's current generation, for a
// commit of their checkpoint fenced by the group. It refuses (with
// connectors.ErrNotMember) when one of them is not held: lost, handed
// over, or assigned to an earlier member id of this source. The group
// only checks that a commit's member and generation are current, not that
// the member owns the partitions committed; a checkpoint begun before the
// group dropped this node and committed after it rejoined under a new id
// would otherwise pass, and write stale state over the next owner's.
func (s *Source) holder(positions map[string]connectors.Position) (string, int32, error) {
	cl := s.groupCl.Load()
	if cl == nil {
		return "", -1, fmt.Errorf("%w: not in group %s yet", connectors.ErrNotMember, s.cfg.Group)
	}
	member, generation := cl.GroupMetadata()
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := make(map[string]*partition, len(s.parts))
	for _, p := range s.parts {
		byID[p.id] = p
	}
	for id := range positions {
		if !strings.HasPrefix(id, "kafka:") {
			continue
		}
		p := byID[id]
		switch {
		case p == nil || p.gone:
			return "", -1, fmt.Errorf("%w: partition %s is no longer assigned to this node", connectors.ErrNotMember, id)
		case p.lost:
			return "", -1, fmt.Errorf("%w: partition %s was lost (the group dropped this node)", connectors.ErrNotMember, id)
		case p.member != member:
			return "", -1, fmt.Errorf("%w: partition %s was assigned to member %s, and the group knows this node as %q now", connectors.ErrNotMember, id, p.member, member)
		}
	}
	return member, generation, nil
}

// addUnread adds to offsets, for each of this group's partitions that
// positions names without a position (a checkpoint that read none of it:
// it was being restored, or had just been assigned), the group's committed
// offset now, or -1, Kafka's "no offset", when it has none. Committed
// again, it changes nothing; what it adds is the fence: without an offset
// the commit would carry no member or generation for the group to check,
// and a node the group had dropped (paused before it heard) could commit
// its marker into a changelog partition whose next owner writes there.
// Not the offset the partition was sought to when it was assigned: a
// partition restored again after a restart was checkpointed further since.
func (s *Source) addUnread(ctx context.Context, positions map[string]connectors.Position, offsets map[string]map[int32]int64) error {
	var unread []tp
	topics := map[string]bool{}
	for id, pos := range positions {
		if t, ok := kafkaPartition(id); ok && pos == nil && slices.Contains(s.cfg.Topics, t.topic) {
			unread = append(unread, t)
			topics[t.topic] = true
		}
	}
	if len(unread) == 0 {
		return nil
	}
	var committed kadm.OffsetResponses
	err := retryTransient(ctx, fmt.Sprintf("kafka: committed offsets of group %s", s.cfg.Group), func(ctx context.Context) error {
		// Stable: an offset still pending in another transaction is
		// waited for (UNSTABLE_OFFSET_COMMIT is retried), not read past.
		var err error
		committed, err = s.adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), s.cfg.Group, slices.Collect(maps.Keys(topics))...)
		for _, t := range unread {
			if o, ok := committed.Lookup(t.topic, t.part); err == nil && ok {
				err = o.Err // (only the unread ones: the others' may be settling)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, t := range unread {
		off := int64(-1)
		if o, ok := committed.Lookup(t.topic, t.part); ok && o.At >= 0 {
			off = o.At
		}
		if offsets[t.topic] == nil {
			offsets[t.topic] = map[int32]int64{}
		}
		offsets[t.topic][t.part] = off
	}
	return nil
}
