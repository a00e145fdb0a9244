package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/engine/reconcile"
	"github.com/understudy-nvr/understudy/placement"
	"github.com/understudy-nvr/understudy/placement/dryrun"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// ctlPlacementPlan is the placement dry-run on the live cluster: the
// topology (the live nodes with their domains, weights and states) and the
// enabled streams come from the server, so the plan predicts what the
// nodes compute, and --fail/--drain/--add show what a change would move.
func ctlPlacementPlan(ctx context.Context, c *ctlEnv, args []string) error {
	fs := c.flags("placement plan")
	level := fs.String("level", "rack", "the cluster's --placement-level")
	overload := fs.Float64("overload", 0, "the cluster's --placement-overload")
	var fail, drain listFlag
	var add addFlag
	fs.Var(&fail, "fail", "nodes that fail (ID,...)")
	fs.Var(&drain, "drain", "nodes to drain (ID,...)")
	fs.Var(&add, "add", "node that joins, ID:DOMAIN:WEIGHT (repeatable)")
	assignments := fs.Bool("assignments", false, "print each stream's nodes, home first")
	if err := c.parse(fs, args, 0, ""); err != nil {
		return err
	}
	if *overload < 0 || *overload > 100 || *overload != *overload {
		return ctlUsagef("placement plan: --overload %v: want a value in [0, 100]", *overload)
	}
	if err := c.connect(); err != nil {
		return err
	}
	ctx, cancel := c.unary(ctx)
	defer cancel()
	nres, err := c.cluster.ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		return err
	}
	var streams []*understudyv1.Stream
	token := ""
	for {
		sres, err := c.streams.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{PageSize: 1000, PageToken: token}))
		if err != nil {
			return err
		}
		streams = append(streams, sres.Msg.GetStreams()...)
		if token = sres.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	nodes, ps := planInputs(nres.Msg.GetNodes(), streams)
	if len(nodes) == 0 {
		return fmt.Errorf("placement plan: the server lists no live node")
	}
	opts := dryrun.Options{Config: placement.Config{Level: *level, Overload: *overload}, Fail: fail, Drain: drain, Assignments: *assignments}
	for _, spec := range add {
		nd, err := dryrun.ParseNodeSpec(spec)
		if err != nil {
			return ctlUsagef("placement plan: --add: %v", err)
		}
		opts.Add = append(opts.Add, nd)
	}
	rep, err := dryrun.Run(nodes, ps, opts)
	if err != nil && *level != "node" {
		// As the nodes do: a level the topology cannot honour falls back to
		// node.
		fmt.Fprintf(c.stderr, "placement plan: level %q refused (%v); placing at level node, as the nodes do\n", *level, err)
		opts.Config.Level = "node"
		rep, err = dryrun.Run(nodes, ps, opts)
	}
	if err != nil {
		return err
	}
	if c.opts.json {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(append(b, '\n'))
		return err
	}
	if err := dryrun.WriteTable(c.stdout, rep); err != nil {
		return err
	}
	if *assignments {
		tw := newCtlTable(c.stdout)
		fmt.Fprintln(tw, "\nSTREAM\tHOME\tREPLICAS")
		ids := make([]string, 0, len(rep.Assignments))
		for id := range rep.Assignments {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			ns := rep.Assignments[id]
			home, reps := "-", "-"
			if len(ns) > 0 {
				home = ns[0]
			}
			if len(ns) > 1 {
				reps = strings.Join(ns[1:], ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", id, home, reps)
		}
		return tw.Flush()
	}
	return nil
}

// planInputs turns the server's nodes and streams into the dry-run's
// input as the nodes place them: the live nodes only (down and left ones
// are not members), a domain that does not parse as host=ID, each
// enabled stream with its weight and scope and R clamped to the nodes
// there are.
func planInputs(ns []*understudyv1.Node, ss []*understudyv1.Stream) ([]placement.Node, []placement.Stream) {
	var nodes []placement.Node
	for _, n := range ns {
		var st placement.State
		switch n.GetState() {
		case understudyv1.NodeState_NODE_STATE_ACTIVE, understudyv1.NodeState_NODE_STATE_SUSPECT:
			st = placement.Active
		case understudyv1.NodeState_NODE_STATE_DRAINING:
			st = placement.Draining
		case understudyv1.NodeState_NODE_STATE_SATURATED:
			st = placement.Saturated
		case understudyv1.NodeState_NODE_STATE_DOWN, understudyv1.NodeState_NODE_STATE_LEFT:
			// Known and down: the nodes place it as failed (only its
			// copies replaced) until it is forgotten. (A node that died
			// draining or saturated held no copies and the nodes leave it
			// out; listed down, the plan counts it as failed.)
			st = placement.Failed
		default:
			continue
		}
		d, err := placement.ParseDomain(n.GetDomain())
		if err != nil {
			d = placement.Domain{{Key: "host", Value: n.GetId()}}
		}
		nodes = append(nodes, placement.Node{ID: n.GetId(), Domain: d, Weight: int64(min(max(n.GetCapacity(), 1), placement.MaxNodeWeight)), State: st})
	}
	var streams []placement.Stream
	for _, s := range ss {
		if !s.GetEnabled() {
			continue
		}
		st := placement.Stream{ID: s.GetId(), Weight: int64(min(max(s.GetWeight(), 1), placement.MaxStreamWeight)),
			Replicas: min(max(int(s.GetReplicas()), 1), placement.MaxReplicas, max(len(nodes), 1))}
		// A scope the nodes' tiers cannot hold is left out, as the nodes do.
		if reconcile.FitsTiers(s.GetScope(), nodes) {
			st.Scope, st.Strict = s.GetScope(), s.GetStrictScope()
		}
		streams = append(streams, st)
	}
	return nodes, streams
}
