package dryrun

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/understudy-nvr/understudy/placement"
)

// Options are the what-if scenarios and the placement settings.
type Options struct {
	// Config is passed to placement (defaults: level rack, epsilon 0.10,
	// overload 0).
	Config placement.Config
	// Fail lists nodes that fail together (one scenario): known and down
	// (placement.Failed), as the cluster places them until they are
	// forgotten.
	Fail []string
	// Add lists nodes that join together (one scenario).
	Add []placement.Node
	// Drain lists nodes set to draining together (one scenario).
	Drain []string
	// Assignments puts each stream's nodes (home first) in the report.
	Assignments bool
}

// NodeRow is one node of the report. Loads are in stream weight units (the
// number of copies when every stream weighs 1).
type NodeRow struct {
	ID         string  `json:"id"`
	Domain     string  `json:"-"`
	Weight     int64   `json:"-"`
	State      string  `json:"-"`
	Target     float64 `json:"target"`
	Copies     int64   `json:"copies"`
	Homes      int64   `json:"homes"`
	BalancePct float64 `json:"balance_pct"`
}

// TierRow is the dispersion at one tier.
type TierRow struct {
	Tier      string `json:"tier"`
	Domains   int    `json:"domains"`
	Shared    int    `json:"shared"`
	Avoidable int    `json:"avoidable"`
}

// ScopeRow is how the streams of one scope were placed.
type ScopeRow struct {
	Scope string `json:"scope"`
	// Streams and Strict count the streams of the scope and its strict
	// ones; Nodes the active nodes in it.
	Streams int `json:"streams"`
	Strict  int `json:"strict"`
	Nodes   int `json:"nodes"`
	// Outside counts the copies placed outside the scope (preferred
	// streams, when it lacks nodes) and OutsideStreams their streams;
	// Short the strict streams left with fewer than R copies.
	Outside        int       `json:"outside_copies"`
	OutsideStreams int       `json:"outside_streams"`
	Short          int       `json:"short_streams"`
	Tiers          []TierRow `json:"tiers"`
}

// Scenario is the movement caused by one what-if change.
type Scenario struct {
	Name               string  `json:"name"`
	CopiesMoved        int     `json:"copies_moved"`
	OptimalMoves       int     `json:"optimal_moves"`
	MoveRatio          float64 `json:"move_ratio"`
	HomesMoved         int     `json:"homes_moved"`
	NewHomeWithoutCopy int     `json:"new_home_without_copy"`
	// HomesFailedOver counts streams whose home failed or left;
	// FailoverToCopy those of them whose new home already held a copy.
	HomesFailedOver int     `json:"homes_failed_over"`
	FailoverToCopy  int     `json:"failover_to_copy"`
	UnderReplicated int     `json:"under_replicated"`
	ElapsedMS       float64 `json:"elapsed_ms"`
	// MaxOverFairCopies and MaxOverFairHomes are the balance after it.
	MaxOverFairCopies float64 `json:"-"`
	MaxOverFairHomes  float64 `json:"-"`
}

// Report is everything the tool prints.
type Report struct {
	Level                string    `json:"-"`
	Epsilon              float64   `json:"-"`
	Overload             float64   `json:"-"`
	Streams              int       `json:"-"`
	Copies               int       `json:"-"`
	Nodes                []NodeRow `json:"nodes"`
	MaxOverFairCopies    float64   `json:"max_over_fair_copies"`
	MaxOverFairHomes     float64   `json:"max_over_fair_homes"`
	DispersionViolations int       `json:"dispersion_violations"`
	Tiers                []TierRow `json:"tiers"`
	// Scopes is set when some stream has a scope.
	Scopes    []ScopeRow `json:"scopes,omitempty"`
	ElapsedMS float64    `json:"elapsed_ms"`
	Scenarios []Scenario `json:"scenarios"`
	// Assignments, with Options.Assignments: each stream's nodes, home
	// first, as the base placement gives them.
	Assignments map[string][]string `json:"assignments,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Run places the streams, runs the scenarios of opts and returns the report.
// Errors about the input wrap ErrBadInput.
func Run(nodes []placement.Node, streams []placement.Stream, opts Options) (*Report, error) {
	cfg := opts.Config
	cfg.EnsureDefaults()
	byID := map[string]placement.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for _, s := range streams {
		if s.Replicas > len(nodes) {
			return nil, fmt.Errorf("%w: stream %q: %d replicas but only %d nodes", ErrBadInput, s.ID, s.Replicas, len(nodes))
		}
	}
	for _, id := range slices.Concat(opts.Fail, opts.Drain) {
		if _, ok := byID[id]; !ok {
			return nil, fmt.Errorf("%w: node %q is not in the topology", ErrBadInput, id)
		}
	}
	for _, n := range opts.Add {
		if _, ok := byID[n.ID]; ok {
			return nil, fmt.Errorf("%w: node %q to add is already in the topology", ErrBadInput, n.ID)
		}
	}
	t0 := time.Now()
	pl, err := placement.NewPlacer(nodes, streams, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	base := pl.Placement()
	rep := &Report{ElapsedMS: ms(time.Since(t0)), Level: cfg.Level, Epsilon: cfg.Epsilon, Overload: cfg.Overload, Streams: len(streams)}
	bal := base.Balance()
	rep.MaxOverFairCopies, rep.MaxOverFairHomes = bal.MaxOverFairCopies, bal.MaxOverFairHomes
	for _, nb := range bal.Nodes {
		n := byID[nb.ID]
		rep.Nodes = append(rep.Nodes, NodeRow{
			ID: nb.ID, Domain: n.Domain.String(), Weight: nb.Weight, State: nb.State.String(),
			Target: nb.TargetCopies, Copies: nb.Copies, Homes: nb.Homes, BalancePct: nb.BalancePct,
		})
		rep.Copies += nb.CopyCount
	}
	if opts.Assignments {
		rep.Assignments = make(map[string][]string, len(streams))
		for _, st := range streams {
			rep.Assignments[st.ID] = base.Lookup(st.ID)
		}
	}
	tiers, v := base.Dispersion()
	rep.DispersionViolations = v
	for _, t := range tiers {
		rep.Tiers = append(rep.Tiers, TierRow(t))
	}
	if sc := base.Scopes(); len(sc) > 1 || (len(sc) == 1 && sc[0].Scope != "") {
		for _, st := range sc {
			row := ScopeRow{Scope: st.Scope, Streams: st.Streams, Strict: st.Strict, Nodes: st.Nodes,
				Outside: st.Outside, OutsideStreams: st.OutsideStreams, Short: st.Short}
			for _, t := range st.Tiers {
				row.Tiers = append(row.Tiers, TierRow(t))
			}
			rep.Scopes = append(rep.Scopes, row)
		}
	}

	scenario := func(name string, change func(*placement.Placer) error) error {
		p, err := placement.NewPlacer(nodes, streams, cfg) // fresh cache, same base
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := change(p); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadInput, name, err)
		}
		after := p.Placement()
		el := time.Since(t0)
		m := placement.Compare(base, after)
		b := after.Balance()
		rep.Scenarios = append(rep.Scenarios, Scenario{
			Name: name, CopiesMoved: m.CopiesMoved, OptimalMoves: m.OptimalMoves, MoveRatio: m.MoveRatio(),
			HomesMoved: m.HomesMoved, NewHomeWithoutCopy: m.NewHomeWithoutCopy, UnderReplicated: m.UnderReplicated,
			HomesFailedOver: m.HomesFailedOver, FailoverToCopy: m.FailoverToCopy,
			ElapsedMS: ms(el), MaxOverFairCopies: b.MaxOverFairCopies, MaxOverFairHomes: b.MaxOverFairHomes,
		})
		return nil
	}
	if len(opts.Fail) > 0 {
		// A failed node is known and down, as the cluster places it
		// (until it is forgotten): only its copies are replaced.
		if err := scenario("fail "+strings.Join(opts.Fail, ","), func(p *placement.Placer) error {
			for _, id := range opts.Fail {
				n, ok := byID[id]
				if !ok {
					return fmt.Errorf("node %q: %w", id, placement.ErrUnknownNode)
				}
				if n.State != placement.Active {
					// It held no copies: the nodes leave it out.
					if err := p.RemoveNode(id); err != nil {
						return err
					}
					continue
				}
				n.State = placement.Failed
				if err := p.UpsertNode(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if len(opts.Add) > 0 {
		ids := make([]string, len(opts.Add))
		for i, n := range opts.Add {
			ids[i] = n.ID
		}
		if err := scenario("add "+strings.Join(ids, ","), func(p *placement.Placer) error {
			for _, n := range opts.Add {
				if err := p.UpsertNode(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if len(opts.Drain) > 0 {
		if err := scenario("drain "+strings.Join(opts.Drain, ","), func(p *placement.Placer) error {
			for _, id := range opts.Drain {
				n := byID[id]
				n.State = placement.Draining
				if err := p.UpsertNode(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return rep, nil
}
