package harness

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Scenarios are the named scenarios of `understudy chaos run`.
var Scenarios = map[string]Scenario{}

func register(s Scenario) { Scenarios[s.Name] = s }

// Names returns the scenario names, sorted; long ones only with long.
func Names(long bool) []string {
	var ns []string
	for n, s := range Scenarios {
		if !s.Long || long {
			ns = append(ns, n)
		}
	}
	sort.Strings(ns)
	return ns
}

func init() {
	register(Scenario{
		Name:    "kill-restart",
		Summary: "one node, 2 cameras: record 15 s, kill -9 the node, restart it 3 s later, record 10 s",
		Nodes:   1, Cameras: 2,
		Script: func(ctx context.Context, r *Run) error {
			return killRestart(ctx, r, 15*time.Second, 3*time.Second, 10*time.Second)
		},
	})
	register(Scenario{
		Name:    "term-restart",
		Summary: "one node, 2 cameras: SIGTERM the node after 20 s, restart it 2 s later, record 15 s",
		Long:    true,
		Nodes:   1, Cameras: 2,
		Script: func(ctx context.Context, r *Run) error {
			if err := r.Sleep(ctx, r.Vary("lead-in", 20*time.Second)); err != nil {
				return err
			}
			r.Plan("SIGTERM %s", r.Nodes[0].ID)
			if err := r.Nodes[0].Term(30 * time.Second); err != nil {
				return err
			}
			if err := r.Sleep(ctx, r.Vary("down", 2*time.Second)); err != nil {
				return err
			}
			if err := r.Nodes[0].Start(ctx); err != nil {
				return err
			}
			return r.Sleep(ctx, 15*time.Second)
		},
	})
	register(Scenario{
		Name:    "freeze-10s",
		Summary: "one node, 2 cameras: SIGSTOP the node for 10 s, SIGCONT, record 20 s",
		Long:    true,
		Nodes:   1, Cameras: 2,
		Script: func(ctx context.Context, r *Run) error {
			return freeze(ctx, r, 10*time.Second)
		},
	})
	register(Scenario{
		Name:    "freeze-60s",
		Summary: "one node, 2 cameras: SIGSTOP the node for 60 s, SIGCONT, record 20 s",
		Long:    true,
		Nodes:   1, Cameras: 2,
		Script: func(ctx context.Context, r *Run) error {
			return freeze(ctx, r, 60*time.Second)
		},
	})
	register(Scenario{
		Name:    "random-kills",
		Summary: "one node, 4 cameras: 5 kill -9 / SIGTERM / SIGSTOP faults at times drawn from the seed",
		Long:    true,
		Nodes:   1, Cameras: 4,
		Script: func(ctx context.Context, r *Run) error {
			n := r.Nodes[0]
			for i := 0; i < 5; i++ {
				up := time.Duration(5+r.Rand.IntN(15)) * time.Second
				down := time.Duration(500+r.Rand.IntN(4500)) * time.Millisecond
				if err := r.Sleep(ctx, up); err != nil {
					return err
				}
				k := r.Rand.IntN(3)
				r.Plan("fault %d after %v: %s, %v", i, up, []string{"kill -9", "SIGTERM", "SIGSTOP"}[k], down)
				switch k {
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
					if err := r.Sleep(ctx, down); err != nil {
						return err
					}
					if err := n.Thaw(); err != nil {
						return err
					}
					continue
				}
				if err := r.Sleep(ctx, down); err != nil {
					return err
				}
				if err := n.Start(ctx); err != nil {
					return fmt.Errorf("restart %d: %w", i, err)
				}
			}
			return r.Sleep(ctx, 10*time.Second)
		},
	})
}

func killRestart(ctx context.Context, r *Run, before, down, after time.Duration) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", before)); err != nil {
		return err
	}
	r.Plan("kill -9 %s", r.Nodes[0].ID)
	r.Nodes[0].Kill()
	if err := r.Sleep(ctx, r.Vary("down", down)); err != nil {
		return err
	}
	if err := r.Nodes[0].Start(ctx); err != nil {
		return err
	}
	return r.Sleep(ctx, after)
}

func freeze(ctx context.Context, r *Run, d time.Duration) error {
	if err := r.Sleep(ctx, r.Vary("lead-in", 10*time.Second)); err != nil {
		return err
	}
	r.Plan("SIGSTOP %s for %v", r.Nodes[0].ID, d)
	if err := r.Nodes[0].Freeze(); err != nil {
		return err
	}
	if err := r.Sleep(ctx, d); err != nil {
		return err
	}
	if err := r.Nodes[0].Thaw(); err != nil {
		return err
	}
	return r.Sleep(ctx, 20*time.Second)
}
