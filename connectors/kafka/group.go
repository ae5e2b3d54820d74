package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Member is the source's member id in its consumer group ("" before it
// has joined) and its group instance id (static membership, else "").
// The cluster's nodes tell each other these (cluster.Group).
func (s *Source) Member() (id, instance string) {
	if cl := s.groupCl.Load(); cl != nil {
		id, _ = cl.GroupMetadata()
	}
	return id, s.cfg.Instance
}

// Remove removes another member, whose process is known to be gone, from
// the group on its behalf (a LeaveGroup naming it), and has this member
// rejoin at once: the group reassigns the gone member's partitions now,
// not when its session times out. A member the group no longer has (it
// left, or another node removed it first) is no error.
func (s *Source) Remove(ctx context.Context, id, instance string) error {
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
