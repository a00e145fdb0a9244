package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// The multi-node scenarios: 3 real nodes gossip-joined, R copies per
// stream. Timings are generous: detection of a dead node takes 5-7 s on
// this machine, a restarted node takes its streams back after
// RejoinHold, backfill leaves the last 10 s out.

func init() {
	register(Scenario{
		Name:    "cluster-home-kill",
		Summary: "3 nodes, 3 cameras, R=2: kill -9 the home of the most streams, restart it 15 s later, record 15 s",
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			return killRestartNodes(ctx, r, 8*time.Second, 15*time.Second, 15*time.Second, r.mostHomes())
		},
	})
	register(Scenario{
		Name:    "cluster-replica-kill",
		Summary: "3 nodes, 2 cameras, R=2: kill -9 the node home of the fewest streams (a replica), restart it 15 s later, record 15 s",
		Long:    true,
		Nodes:   3, Cameras: 2, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			return killRestartNodes(ctx, r, 8*time.Second, 15*time.Second, 15*time.Second, r.fewestHomes())
		},
	})
	register(Scenario{
		Name:    "cluster-freeze-2s",
		Summary: "3 nodes, 3 cameras, R=2: SIGSTOP the home of the most streams for 2 s (under the detection time): nobody declares it down, placement does not move",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			return freezeNode(ctx, r, r.mostHomes(), 2*time.Second, false)
		},
	})
	register(Scenario{
		Name:    "cluster-freeze-10s",
		Summary: "3 nodes, 3 cameras, R=2: SIGSTOP the home of the most streams for 10 s, SIGCONT, record 20 s",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			return freezeNode(ctx, r, r.mostHomes(), 10*time.Second, true)
		},
	})
	register(Scenario{
		Name:    "cluster-freeze-60s",
		Summary: "3 nodes, 3 cameras, R=2: SIGSTOP the home of the most streams for 60 s, SIGCONT, record 20 s",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			return freezeNode(ctx, r, r.mostHomes(), 60*time.Second, true)
		},
	})
	register(Scenario{
		Name:    "cluster-rolling-restart",
		Summary: "3 nodes, 3 cameras, R=2: SIGTERM each node in turn (the order drawn from the seed), start it 2 s later, wait for R live recorders of every stream",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			for _, i := range r.Rand.Perm(len(r.Nodes)) {
				n := r.Nodes[i]
				if err := r.Sleep(ctx, r.Vary("up", 5*time.Second)); err != nil {
					return err
				}
				r.Plan("SIGTERM %s", n.ID)
				if err := n.Term(30 * time.Second); err != nil {
					return err
				}
				if err := r.Sleep(ctx, r.Vary("down", 2*time.Second)); err != nil {
					return err
				}
				if err := n.Start(ctx); err != nil {
					return err
				}
				// Back in its place (after the rejoin hold) and recording,
				// before the next node goes: otherwise the next restart
				// may take a stream's last placed recorder.
				if err := r.waitPlacedAsBefore(ctx, "the placement of before the restarts"); err != nil {
					return fmt.Errorf("after restarting %s: %w", n.ID, err)
				}
			}
			return r.Sleep(ctx, 5*time.Second)
		},
	})
	register(Scenario{
		Name:    "cluster-two-kill",
		Summary: "3 nodes, 2 cameras, R=3: kill -9 two nodes at once (drawn from the seed), restart both 15 s later, record 15 s",
		Long:    true,
		Nodes:   3, Cameras: 2, Replicas: 3,
		Script: func(ctx context.Context, r *Run) error {
			p := r.Rand.Perm(len(r.Nodes))
			return killRestartNodes(ctx, r, 8*time.Second, 15*time.Second, 15*time.Second, r.Nodes[p[0]], r.Nodes[p[1]])
		},
	})
	register(Scenario{
		Name:    "cluster-random",
		Summary: "3 nodes, 3 cameras, R=2: 4 faults (kill -9, SIGTERM, SIGSTOP 1-15 s) of one node at a time, node and times drawn from the seed",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			for i := 0; i < 4; i++ {
				n := r.Nodes[r.Rand.IntN(len(r.Nodes))]
				up := time.Duration(3+r.Rand.IntN(8)) * time.Second
				down := time.Duration(1000+r.Rand.IntN(14000)) * time.Millisecond
				kind := r.Rand.IntN(3)
				if err := r.Sleep(ctx, up); err != nil {
					return err
				}
				r.Plan("fault %d after %v: %s %s for %v", i, up, []string{"kill -9", "SIGTERM", "SIGSTOP"}[kind], n.ID, down)
				switch kind {
				case 0:
					n.Kill()
				case 1:
					if err := n.Term(30 * time.Second); err != nil {
						return err
					}
				case 2:
					if err := n.Freeze(); err != nil {
						return err
					}
				}
				if err := r.Sleep(ctx, down); err != nil {
					return err
				}
				if kind == 2 {
					if err := n.Thaw(); err != nil {
						return err
					}
				} else if err := n.Start(ctx); err != nil {
					return fmt.Errorf("fault %d: restart %s: %w", i, n.ID, err)
				}
				// One node faulted at a time: every stream keeps a live
				// recorder (R=2) only if the next fault waits for R.
				if _, err := r.WaitReplicated(ctx, r.Streams, r.Replicas, replicatedTimeout); err != nil {
					return fmt.Errorf("after fault %d: %w", i, err)
				}
			}
			return r.Sleep(ctx, 5*time.Second)
		},
	})
}

// homes counts the streams each node is home of in the agreed placement.
func (r *Run) homes() map[string]int {
	h := map[string]int{}
	for _, n := range r.Nodes {
		h[n.ID] = 0
	}
	for _, ns := range r.Placed {
		h[ns[0]]++
	}
	return h
}

// mostHomes is the node home of the most streams (a tie is broken by
// the seed).
func (r *Run) mostHomes() *Node {
	h := r.homes()
	return r.pickBy(func(n *Node) int { return h[n.ID] })
}

// fewestHomes is the node home of the fewest streams (a tie is broken by
// the seed).
func (r *Run) fewestHomes() *Node {
	h := r.homes()
	return r.pickBy(func(n *Node) int { return -h[n.ID] })
}

// pickBy is a node of the highest score, drawn from the seed among the
// ties, and noted in the schedule.
func (r *Run) pickBy(score func(*Node) int) *Node {
	var best []*Node
	for _, n := range r.Nodes {
		switch {
		case len(best) == 0 || score(n) > score(best[0]):
			best = []*Node{n}
		case score(n) == score(best[0]):
			best = append(best, n)
		}
	}
	v := best[r.Rand.IntN(len(best))]
	r.Plan("victim %s", v.ID)
	return v
}

// killRestartNodes records before, kills every victim with SIGKILL at
// once, waits down, starts them again and records after.
// The lead-in and the time down are drawn from the seed around before
// and down (Vary).
func killRestartNodes(ctx context.Context, r *Run, before, down, after time.Duration, victims ...*Node) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", before)); err != nil {
		return err
	}
	for _, v := range victims {
		r.Plan("kill -9 %s", v.ID)
		r.Logf("placement %v", r.Placed)
		v.Kill()
	}
	if err := r.Sleep(ctx, r.Vary("down", down)); err != nil {
		return err
	}
	for _, v := range victims {
		if err := v.Start(ctx); err != nil {
			return err
		}
	}
	return r.Sleep(ctx, after)
}

// freezeNode freezes victim for d with SIGSTOP. Meanwhile it watches the
// other nodes: a failover is a survivor calling the victim down or
// placing differently. expectFailover false makes one a failure (a freeze
// shorter than the detection time must move nothing).
func freezeNode(ctx context.Context, r *Run, victim *Node, d time.Duration, expectFailover bool) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
		return err
	}
	r.Plan("SIGSTOP %s for %v", victim.ID, d)
	if err := victim.Freeze(); err != nil {
		return err
	}
	start := time.Now()
	var failover string
	for time.Since(start) < d {
		if failover == "" {
			failover = r.failoverSeen(ctx, victim)
			if failover != "" {
				r.Logf("%s frozen %v: failover: %s", victim.ID, time.Since(start).Round(100*time.Millisecond), failover)
			}
		}
		if err := r.Sleep(ctx, min(300*time.Millisecond, d-time.Since(start))); err != nil {
			return err
		}
	}
	if err := victim.Thaw(); err != nil {
		return err
	}
	// Right after the thaw the survivors may still be deciding.
	for t := time.Now(); failover == "" && time.Since(t) < 2*time.Second; {
		failover = r.failoverSeen(ctx, victim)
		if err := r.Sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	switch {
	case failover != "" && !expectFailover:
		r.Fail("a %v SIGSTOP of %s (under the detection time) moved streams: %s", d, victim.ID, failover)
	case failover == "" && expectFailover:
		r.Logf("a %v SIGSTOP of %s: no failover seen", d, victim.ID)
	default:
		r.Logf("a %v SIGSTOP of %s: failover %q", d, victim.ID, failover)
	}
	return r.Sleep(ctx, 20*time.Second)
}

// failoverSeen says what, if anything, shows a survivor moved streams
// off victim: it calls victim down, or places differently.
// gossipFault records 8 s, applies fault to v for hold, watching for a
// survivor to notice (a Fail if none does and mustNotice), ends it with
// heal, waits until every node sees every node active, and records 20 s.
func (r *Run) gossipFault(ctx context.Context, v *Node, what string, fault, heal func() error, hold time.Duration, mustNotice bool) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", 8*time.Second)); err != nil {
		return err
	}
	r.Plan("%s %s for %v", v.ID, what, hold)
	if err := fault(); err != nil {
		return err
	}
	start := time.Now()
	seen := ""
	for time.Since(start) < hold && seen == "" {
		seen = r.failoverSeen(ctx, v)
		if err := r.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	switch {
	case seen != "":
		r.Logf("%s %s: %s after %v", v.ID, what, seen, time.Since(start).Round(100*time.Millisecond))
	case mustNotice:
		r.Fail("%s %s for %v: no survivor noticed", v.ID, what, hold)
	default:
		r.Logf("%s %s for %v: no failover", v.ID, what, hold)
	}
	if err := r.Sleep(ctx, hold-time.Since(start)); err != nil {
		return err
	}
	if err := heal(); err != nil {
		return err
	}
	if err := r.WaitMembers(ctx, joinTimeout); err != nil {
		return fmt.Errorf("after %s ended: %w", what, err)
	}
	return r.Sleep(ctx, 20*time.Second)
}

func (r *Run) failoverSeen(ctx context.Context, victim *Node) string {
	for _, n := range r.Nodes {
		if n == victim || !n.Up() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := r.NodeStates(cctx, n)
		if err == nil && st[victim.ID] == understudyv1.NodeState_NODE_STATE_DOWN {
			cancel()
			return n.ID + " declared " + victim.ID + " down"
		}
		p, err := r.Placement(cctx, n)
		cancel()
		if err == nil && len(p) == len(r.Placed) && !maps.EqualFunc(p, r.Placed, slices.Equal[[]string]) {
			return fmt.Sprintf("%s places %v, was %v", n.ID, p, r.Placed)
		}
	}
	return ""
}

func init() {
	register(Scenario{
		Name:    "cluster-cut-off",
		Summary: "3 nodes, 3 cameras, R=2: cut the home of the most streams off from the gossip for 20 s (API and cameras still reachable), heal, record 20 s (chaosfaults build)",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Faults: "gossip-cut",
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			return r.gossipFault(ctx, v, "cut off from the gossip", v.CutGossip, v.HealGossip, 20*time.Second, true)
		},
	})
}

func init() {
	register(Scenario{
		Name:    "cluster-home-then-replica",
		Summary: "3 nodes, 3 cameras, R=2: kill -9 the home of the most streams, restart it; once it is back in its place, kill -9 the replica of its streams, restart it",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 2,
		Script: func(ctx context.Context, r *Run) error {
			home := r.mostHomes()
			if err := killRestartNodes(ctx, r, 8*time.Second, 15*time.Second, 0, home); err != nil {
				return err
			}
			if err := r.waitPlacedAsBefore(ctx, home.ID+" back in its place"); err != nil {
				return err
			}
			// The replica of a stream the home recovered: its archive's
			// backfill source is now the one that dies.
			var replica *Node
			for _, ns := range r.Placed {
				if ns[0] == home.ID {
					replica = r.Node(ns[1])
					break
				}
			}
			if replica == nil {
				return fmt.Errorf("%s is home of no stream: %v", home.ID, r.Placed)
			}
			return killRestartNodes(ctx, r, 5*time.Second, 15*time.Second, 15*time.Second, replica)
		},
	})
}

func init() {
	register(Scenario{
		Name:    "cluster-drain",
		Summary: "3 nodes, 3 cameras, R=1: drain the home of the most streams (its one copy moves: make-before-break), record 10 s, make it active again (they move back), record 10 s",
		Long:    true,
		Nodes:   3, Cameras: 3, Replicas: 1,
		Script: func(ctx context.Context, r *Run) error {
			v := r.mostHomes()
			if err := r.Sleep(ctx, r.Vary("lead-in", 5*time.Second)); err != nil {
				return err
			}
			r.Plan("drain %s", v.ID)
			r.Logf("placement %v", r.Placed)
			if err := r.SetState(ctx, v, understudyv1.NodeState_NODE_STATE_DRAINING); err != nil {
				return err
			}
			if err := waitFor(ctx, replicatedTimeout, "every stream off "+v.ID, func() (bool, string) {
				p, err := r.WaitReplicated(ctx, r.Streams, r.Replicas, replicatedTimeout)
				if err != nil {
					return false, err.Error()
				}
				for id, ns := range p {
					if slices.Contains(ns, v.ID) {
						return false, fmt.Sprintf("%s still placed on %v", id, ns)
					}
				}
				return true, ""
			}); err != nil {
				return err
			}
			if err := r.Sleep(ctx, 10*time.Second); err != nil {
				return err
			}
			r.Logf("%s active again", v.ID)
			if err := r.SetState(ctx, v, understudyv1.NodeState_NODE_STATE_ACTIVE); err != nil {
				return err
			}
			if err := r.waitPlacedAsBefore(ctx, "the placement of before the drain"); err != nil {
				return err
			}
			return r.Sleep(ctx, 10*time.Second)
		},
	})
}

// waitPlacedAsBefore waits until every stream is recorded by R live nodes
// placed as before the script (Run.Placed); what names the moment.
func (r *Run) waitPlacedAsBefore(ctx context.Context, what string) error {
	return waitFor(ctx, replicatedTimeout, what, func() (bool, string) {
		p, err := r.WaitReplicated(ctx, r.Streams, r.Replicas, replicatedTimeout)
		if err != nil {
			return false, err.Error()
		}
		return maps.EqualFunc(p, r.Placed, slices.Equal[[]string]), fmt.Sprintf("placement %v, was %v", p, r.Placed)
	})
}
