package kafka

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/eddy-stream/eddy/connectors"
)

var _ connectors.StandbySource = (*Source)(nil)

// Standbys names the partitions this member should keep warm copies of: for
// each partition of the group's topics, the n members other than its owner
// that rank highest by a hash of partition and member (rendezvous hashing),
// so every member computes the same choice from the group's description
// and a member joining or leaving moves few standbys.
func (s *Source) Standbys(ctx context.Context, n int) ([]string, error) {
	if n <= 0 || s.cl == nil {
		return nil, nil
	}
	me, _ := s.cl.GroupMetadata()
	if me == "" {
		return nil, nil // not in the group yet
	}
	groups, err := s.adm.DescribeGroups(ctx, s.cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe group %s: %w", s.cfg.Group, err)
	}
	g, ok := groups[s.cfg.Group]
	if !ok || g.Err != nil {
		return nil, fmt.Errorf("kafka: describe group %s: %v", s.cfg.Group, g.Err)
	}
	owner := map[string]string{} // partition id → member
	var members []string
	for _, m := range g.Members {
		members = append(members, m.MemberID)
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range a.Topics {
			for _, p := range t.Partitions {
				owner[tp{t.Topic, p}.id()] = m.MemberID
			}
		}
	}
	var out []string
	for id, own := range owner {
		if own == me {
			continue
		}
		if rendezvous(id, members, own, n)[me] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

// rendezvous picks the n members but owner that rank highest for id.
func rendezvous(id string, members []string, owner string, n int) map[string]bool {
	type ranked struct {
		m string
		h uint64
	}
	var rs []ranked
	for _, m := range members {
		if m == owner {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(m))
		rs = append(rs, ranked{m, h.Sum64()})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].h > rs[j].h })
	out := map[string]bool{}
	for i := 0; i < n && i < len(rs); i++ {
		out[rs[i].m] = true
	}
	return out
}
