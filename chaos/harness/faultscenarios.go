package harness

import (
	"context"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// The scenarios of faults switched at run time: a node's disk (blocked,
// EIO, ENOSPC, a flipped byte in a closed segment) and clock, a camera
// that comes and goes, a failure domain cut off. The disk and clock ones
// need a chaosfaults build (Scenario.Faults); a camera's outages go
// through camsim's control file and need none.

func init() {
	register(Scenario{
		Name:    "disk-blocked-30s",
		Summary: "3 nodes, 3 cameras, R=2: every write under the data directory of the home of the most streams blocks for 30 s, then resumes; record 20 s (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "disk",
		Script: func(ctx context.Context, r *Run) error {
			return diskSpell(ctx, r, DiskBlock, "a 30 s disk stall", 30*time.Second)
		},
	})
	register(Scenario{
		Name:    "disk-slow-30s",
		Summary: "3 nodes, 3 cameras, R=2: every create, write and sync under the data directory of the home of the most streams takes 800 ms longer for 30 s, then the disk is fast again; record 20 s (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "disk",
		Script: func(ctx context.Context, r *Run) error {
			return diskSpell(ctx, r, DiskSlow(800*time.Millisecond), "30 s of a slow disk", 30*time.Second)
		},
	})
	for _, f := range []struct{ name, mode, what string }{
		{"disk-eio", DiskEIO, "EIO"},
		{"disk-enospc", DiskENOSPC, "ENOSPC"},
	} {
		register(Scenario{
			Name: f.name,
			Summary: "3 nodes, 3 cameras, R=2: segment writes of the home of the most streams fail with " + f.what +
				" for 20 s: it marks itself saturated and its streams move; healed, it clears the mark and takes them back; record 15 s (chaosfaults build)",
			Long:  true,
			Nodes: 3, Cameras: 3, Replicas: 2,
			Faults: "disk",
			Script: func(ctx context.Context, r *Run) error {
				return diskFault(ctx, r, r.mostHomes(), f.mode, 20*time.Second)
			},
		})
	}
	register(Scenario{
		Name:    "disk-flip",
		Summary: "3 nodes, 3 cameras, R=2: flip 16 bytes of a closed archive segment on the home of the most streams, play it back through it: the checksum fails, the file is quarantined, the playback served from the peers' copies, the range backfilled",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: diskFlip,
	})
}

// diskSpell puts the disk of the home of the most streams in mode for d,
// heals it, checks the node is still up and records 20 s.
func diskSpell(ctx context.Context, r *Run, mode, what string, d time.Duration) error {
	v := r.mostHomes()
	return r.spell(ctx, fmt.Sprintf("disk of %s %q for %v", v.ID, mode, d), d,
		func() error { return v.SetDiskFault(mode) },
		func() error {
			if err := v.SetDiskFault(DiskHealthy); err != nil {
				return err
			}
			if !v.Up() {
				r.Fail("%s did not survive %s", v.ID, what)
			}
			return nil
		})
}

// spell is the shape of a fault that comes and goes: a lead-in drawn from
// the seed, the fault for hold, the heal, and 20 s of recording after it.
func (r *Run) spell(ctx context.Context, plan string, hold time.Duration, fault, heal func() error) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
		return err
	}
	r.Plan("%s", plan)
	if err := fault(); err != nil {
		return err
	}
	if err := r.Sleep(ctx, hold); err != nil {
		return err
	}
	if err := heal(); err != nil {
		return err
	}
	return r.Sleep(ctx, 20*time.Second)
}

// diskFault fails victim's segment writes with mode for d: within the
// fault the victim must report itself saturated and hold no copy in the
// placement every other node computes; after the heal the placement of
// before comes back.
func diskFault(ctx context.Context, r *Run, v *Node, mode string, d time.Duration) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
		return err
	}
	r.Plan("%s on the segment writes of %s for %v", mode, v.ID, d)
	if err := v.SetDiskFault(mode); err != nil {
		return err
	}
	start := time.Now()
	saturated, moved := time.Duration(0), time.Duration(0)
	for time.Since(start) < d {
		for _, n := range r.Nodes {
			if n == v || !n.Up() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := r.NodeStates(cctx, n)
			if err == nil && saturated == 0 && st[v.ID] == understudyv1.NodeState_NODE_STATE_SATURATED {
				saturated = time.Since(start)
				r.Logf("%s sees %s saturated %v after the %s fault", n.ID, v.ID, saturated.Round(100*time.Millisecond), mode)
			}
			p, err := r.Placement(cctx, n)
			cancel()
			if err == nil && moved == 0 && len(p) == len(r.Streams) && !placesOn(p, v.ID) {
				moved = time.Since(start)
				r.Logf("%s places nothing on %s %v after the fault: %v", n.ID, v.ID, moved.Round(100*time.Millisecond), p)
			}
			break
		}
		if err := r.Sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	if saturated == 0 {
		r.Fail("%s: %v of %s on segment writes: no node saw it saturated", v.ID, d, mode)
	}
	if moved == 0 {
		r.Fail("%s: %v of %s on segment writes: its copies did not move", v.ID, d, mode)
	}
	if _, err := r.WaitReplicated(ctx, r.Streams, r.Replicas, replicatedTimeout); err != nil {
		return fmt.Errorf("during the %s fault: %w", mode, err)
	}
	if err := v.SetDiskFault(DiskHealthy); err != nil {
		return err
	}
	healed := time.Now()
	if err := r.waitPlacedAsBefore(ctx, "the placement of before the fault"); err != nil {
		return fmt.Errorf("after the heal: %w", err)
	}
	r.Logf("%s back in its place %v after the heal", v.ID, time.Since(healed).Round(100*time.Millisecond))
	return r.Sleep(ctx, 15*time.Second)
}

func placesOn(p map[string][]string, id string) bool {
	for _, ns := range p {
		if slices.Contains(ns, id) {
			return true
		}
	}
	return false
}

// diskFlip rots a closed segment of the home of the most streams, reads
// it back through the home (an export of its span, as an investigator's
// playback would) and expects the checksum to catch it: the file moves
// to quarantine, and backfill refills the range from a peer (the end
// checks: the home's archive whole, its own copy holding every frame,
// fsck clean).
func diskFlip(ctx context.Context, r *Run) error {
	v := r.mostHomes()
	var stream string
	for _, id := range r.Streams {
		if r.Placed[id][0] == v.ID {
			stream = id
			break
		}
	}
	from := time.Now()
	if err := r.Sleep(ctx, r.Vary("lead-in", 15*time.Second)); err != nil {
		return err
	}
	r.Plan("flip bytes of a closed archive segment of %s on %s", stream, v.ID)
	rel, start, err := v.FlipSegmentBytes(stream, from.Add(-Warmup), time.Now().Add(-2*clusterSegment))
	if err != nil {
		return err
	}
	before := len(v.Quarantined())
	// Played back through the home: the read checks the checksum, the
	// home quarantines the file and serves the span from the peers'
	// copies (a failed playback here was the suite's first finding).
	mp4, err := r.Export(ctx, v, stream, start, start.Add(clusterSegment))
	if err != nil {
		r.Fail("the playback of %s's rotten span through %s: %v", stream, v.ID, err)
	} else {
		r.Logf("playback of %s's rotten span through %s: %d bytes", stream, v.ID, len(mp4))
	}
	if err := waitFor(ctx, 10*time.Second, v.ID+" quarantines "+rel, func() (bool, string) {
		return len(v.Quarantined()) > before, fmt.Sprintf("quarantine holds %v", v.Quarantined())
	}); err != nil {
		r.Fail("%v", err)
	}
	return r.Sleep(ctx, 15*time.Second)
}

func init() {
	register(Scenario{
		Name:    "camera-flap",
		Summary: "3 nodes, 2 cameras, R=2: camera 0 goes away and back 4 times (paused: connected and silent; stopped: 404; unreachable), 2-6 s each, drawn from the seed: SOURCE gaps, never SYSTEM, no frame it sent lost",
		Long:    true,
		Nodes:   3, Cameras: 2, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			states := []string{CameraPause, CameraStop, CameraUnreachable, CameraPause}
			var outs []Span
			for i, st := range states {
				if err := r.Sleep(ctx, time.Duration(4000+r.Rand.IntN(4000))*time.Millisecond); err != nil {
					return err
				}
				d := time.Duration(2000+r.Rand.IntN(4000)) * time.Millisecond
				r.Plan("outage %d of camera 0: %s for %v", i, st, d)
				sp, err := r.CameraOutage(ctx, 0, st, d)
				if err != nil {
					return err
				}
				outs = append(outs, sp)
			}
			if err := r.Sleep(ctx, 15*time.Second); err != nil {
				return err
			}
			return r.sourceGapsCover(ctx, streamID(0), outs)
		},
	})
}

// CameraOutage puts camera i in state for d, then up again; the camera's
// return is a start of its recorders (check.Options.Starts): until the
// first keyframe it sends once a recorder reconnected, missing frames
// are "starting", as after a node's restart. It returns the outage.
func (r *Run) CameraOutage(ctx context.Context, i int, state string, d time.Duration) (Span, error) {
	start := time.Now()
	if err := r.SetCamera(i, state); err != nil {
		return Span{}, err
	}
	if err := r.Sleep(ctx, d); err != nil {
		return Span{}, err
	}
	if err := r.SetCamera(i, CameraUp); err != nil {
		return Span{}, err
	}
	end := time.Now()
	if r.cameraStarts == nil {
		r.cameraStarts = map[int][]time.Time{}
		r.cameraOut = map[int][]Span{}
	}
	r.cameraOut[i] = append(r.cameraOut[i], Span{start, end})
	// The camera takes the file within 100 ms (its poll).
	r.cameraStarts[i] = append(r.cameraStarts[i], end)
	return Span{start, end}, nil
}

// sourceGapsCover checks that the federated timeline (asked of every
// node up) shows each outage as a SOURCE gap, save its edges (the
// camera's 100 ms poll, the recorders' read timeout and reconnection),
// and no SYSTEM gap over any of it.
func (r *Run) sourceGapsCover(ctx context.Context, stream string, outs []Span) error {
	const edge = 1500 * time.Millisecond
	for _, n := range r.Nodes {
		if !n.Up() {
			continue
		}
		resp, err := n.Recording().GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{
			StreamId: stream, Start: timestamppb.New(outs[0].Start.Add(-time.Second)), End: timestamppb.New(time.Now())}))
		if err != nil {
			return fmt.Errorf("GetTimeline %s on %s: %w", stream, n.ID, err)
		}
		var source []Span
		for _, g := range resp.Msg.Gaps {
			sp := Span{g.Start.AsTime(), g.End.AsTime()}
			if g.Kind == understudyv1.GapKind_GAP_KIND_SOURCE {
				source = append(source, sp)
			} else {
				for _, o := range outs {
					if sp.Start.Before(o.End) && o.Start.Before(sp.End) {
						r.Fail("%s on %s: a SYSTEM gap %v over the camera's outage %v", stream, n.ID, sp, o)
					}
				}
			}
		}
		for _, o := range outs {
			inner := Span{o.Start.Add(edge), o.End.Add(-edge / 3)}
			if !inner.End.After(inner.Start) {
				continue
			}
			if h := Holes(source, inner.Start, inner.End); len(h) > 0 {
				r.Fail("%s on %s: the camera's outage %v is not a SOURCE gap over %v (SOURCE gaps %v)", stream, n.ID, o, h, source)
			}
		}
		r.Logf("%s on %s: SOURCE gaps %v for the outages %v", stream, n.ID, source, outs)
	}
	return nil
}

// cameraAway reports whether hole h of camera i's archive lies within one
// of its outages, or the StartGrace after it (the recorders' reconnection
// and their wait for a keyframe, which the frame checker allows as well):
// time the camera sent nothing has nothing to backfill.
func (r *Run) cameraAway(i int, h Span) bool {
	for _, o := range r.cameraOut[i] {
		if !h.Start.Before(o.Start) && !h.End.After(o.End.Add(startGrace)) {
			return true
		}
	}
	return false
}

// startGrace is check.Options.StartGrace's default.
const startGrace = 5 * time.Second

func init() {
	register(Scenario{
		Name:    "domain-cut",
		Summary: "4 nodes in 3 failure domains (n3 and n4 share z3), 3 cameras, R=2: cut z3 off from the gossip of the others for 20 s (n3 and n4 still hear each other), heal, record 20 s: both sides keep recording, converge after the heal (chaosfaults build)",
		Long:    true,
		Nodes:   4, Cameras: 3, Replicas: 2, Zones: []int{1, 2, 3, 3},
		Faults: "gossip-cut",
		Script: func(ctx context.Context, r *Run) error {
			return domainCut(ctx, r, func(cut []*Node) error {
				for _, n := range cut {
					if err := n.CutGossipExcept(others(cut, n)...); err != nil {
						return err
					}
				}
				return nil
			}, func(cut []*Node) error {
				for _, n := range cut {
					if err := n.HealGossip(); err != nil {
						return err
					}
				}
				return nil
			})
		},
	})
	register(Scenario{
		Name:    "net-domain-cut",
		Summary: "4 nodes in 3 failure domains (n3 and n4 share z3), each in a network namespace, 3 cameras, R=2: z3 and the other zones cannot reach each other for 20 s, by any protocol (gossip, peer calls, API); both keep their cameras; heal, record 20 s: both sides keep recording, converge after the heal (root)",
		Long:    true,
		Nodes:   4, Cameras: 3, Replicas: 2, Zones: []int{1, 2, 3, 3},
		Netns: true,
		Script: func(ctx context.Context, r *Run) error {
			return domainCut(ctx, r, r.Partition, r.HealPartition)
		},
	})
	register(Scenario{
		Name:    "net-node-cut",
		Summary: "3 nodes, each in a network namespace, 3 cameras, R=2: the home of the most streams loses its network link for 20 s (cameras, gossip, peer calls and API all go), then gets it back; record 20 s: the replicas record through it and its archive is backfilled (root)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Netns: true,
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			return r.gossipFault(ctx, v, "off the network", v.CutNetwork, v.HealNetwork, 20*time.Second, true)
		},
	})
}

// domainCut cuts the last node's zone off from the other zones for 20 s
// with cutOff, heals it, and checks that both sides placed every stream on
// themselves meanwhile and that the placement of before comes back.
func domainCut(ctx context.Context, r *Run, cutOff, heal func(cut []*Node) error) error {
	var cut, rest []*Node
	for i, n := range r.Nodes {
		if r.Zone(i) == r.Zone(len(r.Nodes)-1) {
			cut = append(cut, n)
		} else {
			rest = append(rest, n)
		}
	}
	if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
		return err
	}
	r.Plan("cut off %v for 20s", ids(cut))
	r.Logf("placement %v", r.Placed)
	if err := cutOff(cut); err != nil {
		return err
	}
	start := time.Now()
	sides := map[string]bool{}
	for time.Since(start) < 20*time.Second {
		for _, side := range [][]*Node{cut, rest} {
			if s := r.sidePlacesAll(ctx, side); s != "" && !sides[s] {
				sides[s] = true
				r.Logf("%v after the cut: %s", time.Since(start).Round(100*time.Millisecond), s)
			}
		}
		if err := r.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	if len(sides) < 2 {
		r.Fail("20 s of %v cut off: not both sides placed every stream on themselves: %v", ids(cut), sides)
	}
	if err := heal(cut); err != nil {
		return err
	}
	if err := r.WaitMembers(ctx, joinTimeout); err != nil {
		return fmt.Errorf("after the heal: %w", err)
	}
	if err := r.waitPlacedAsBefore(ctx, "the placement of before the cut"); err != nil {
		return err
	}
	return r.Sleep(ctx, 20*time.Second)
}

// sidePlacesAll says, when a node of side places every stream on R nodes
// of side only, which node and how; "" otherwise.
func (r *Run) sidePlacesAll(ctx context.Context, side []*Node) string {
	in := map[string]bool{}
	for _, n := range side {
		in[n.ID] = true
	}
	for _, n := range side {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		p, err := r.Placement(cctx, n)
		cancel()
		if err != nil || len(p) != len(r.Streams) {
			continue
		}
		ok := true
		for _, ns := range p {
			if len(ns) != r.Replicas {
				ok = false
			}
			for _, id := range ns {
				ok = ok && in[id]
			}
		}
		if ok {
			return fmt.Sprintf("%s places every stream on its side %v", n.ID, ids(side))
		}
	}
	return ""
}

func ids(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func others(ns []*Node, n *Node) []*Node {
	var out []*Node
	for _, m := range ns {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

func init() {
	register(Scenario{
		Name:    "clock-step",
		Summary: "3 nodes, 3 cameras, R=2: the clock of the home of the most streams steps 5 s ahead; record 15 s, restart it (its sessions start under the stepped clock), record 15 s: timestamps monotonic, no false gap, no frame lost (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "clock-step",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
				return err
			}
			r.Plan("step the clock of %s 5s ahead", v.ID)
			if err := v.SetClockOffset(5 * time.Second); err != nil {
				return err
			}
			if err := r.Sleep(ctx, 15*time.Second); err != nil {
				return err
			}
			if err := v.Term(30 * time.Second); err != nil {
				return err
			}
			if err := v.Start(ctx); err != nil {
				return err
			}
			if err := r.waitPlacedAsBefore(ctx, v.ID+" back in its place"); err != nil {
				return err
			}
			return r.Sleep(ctx, 15*time.Second)
		},
	})
}

func init() {
	register(Scenario{
		Name:    "gossip-one-way",
		Summary: "3 nodes, 3 cameras, R=2: every gossip packet the home of the most streams sends is lost for 20 s (it still hears its peers; its TCP fails both ways), then passes again; record 20 s (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "gossip-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			return r.gossipFault(ctx, v, "unheard", func() error { return v.ImpairGossip("out=1") },
				func() error { return v.ImpairGossip("") }, 20*time.Second, true)
		},
	})
	register(Scenario{
		Name:    "gossip-loss-delay",
		Summary: "3 nodes, 3 cameras, R=2: the gossip of the home of the most streams loses 20 % of its packets each way and is delayed 150 ms for 40 s, then is clean again; record 20 s: whatever the failure detector makes of it, no frame is lost (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "gossip-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			// Whatever the failure detector makes of the link, no frame
			// may be lost: a failover is allowed, not required.
			return r.gossipFault(ctx, v, "on a lossy, slow link", func() error { return v.ImpairGossip("out=0.2 in=0.2 delay=150ms") },
				func() error { return v.ImpairGossip("") }, 40*time.Second, false)
		},
	})
}

func init() {
	register(Scenario{
		Name:    "camera-link-cut",
		Summary: "3 nodes, 3 cameras, R=2: the home of the most streams loses its link to the cameras for 20 s (its TCP connections to them closed, new ones refused; gossip and API up), then gets it back; record 20 s: the replicas record through it and the home's archive is backfilled (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "camera-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			return r.spell(ctx, fmt.Sprintf("cut %s off its cameras for 20s", v.ID), 20*time.Second, v.CutCameras, v.HealCameras)
		},
	})
	register(Scenario{
		Name:    "camera-link-slow",
		Summary: "3 nodes, 3 cameras, R=2: the home of the most streams gets a slow link to its cameras for 30 s (what they send arrives 400 ms later, plus up to 300 ms of jitter, then 1.5 s later for 10 s), then a clean one; record 20 s: nothing lost, and no frame put at the wrong time (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "camera-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			return r.spell(ctx, fmt.Sprintf("delay the camera link of %s 400ms+300ms jitter for 20s, then 1.5s for 10s", v.ID), 20*time.Second,
				func() error { return v.DelayCameras(400*time.Millisecond, 300*time.Millisecond) },
				func() error {
					if err := v.DelayCameras(1500*time.Millisecond, 0); err != nil {
						return err
					}
					if err := r.Sleep(ctx, 10*time.Second); err != nil {
						return err
					}
					return v.HealCameras()
				})
		},
	})
	register(Scenario{
		Name:    "node-isolated",
		Summary: "3 nodes, 3 cameras, R=2: the home of the most streams loses its network for 20 s, the gossip and the cameras both (the harness still reaches its API), then gets it back; record 20 s (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "gossip-cut,camera-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			isolate := func() error {
				if err := v.CutGossip(); err != nil {
					return err
				}
				return v.CutCameras()
			}
			reconnect := func() error {
				if err := v.HealCameras(); err != nil {
					return err
				}
				return v.HealGossip()
			}
			return r.gossipFault(ctx, v, "isolated (gossip and cameras cut)", isolate, reconnect, 20*time.Second, true)
		},
	})
}
