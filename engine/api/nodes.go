package api

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/placement"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// The node settings that belong to the cluster (state and capacity) are
// set through any node: UpdateNode passes the change to the node it
// concerns, which keeps it in its data directory (Node.UpdateSettings)
// and announces it in its membership metadata.

// UpdateNode changes a node's cluster settings, on this node or, passed on
// with the cluster credential, on the node named.
func (a api) UpdateNode(ctx context.Context, req *connect.Request[understudyv1.UpdateNodeRequest]) (*connect.Response[understudyv1.UpdateNodeResponse], error) {
	m := req.Msg
	if m.GetNodeId() == "" {
		return nil, invalid("node_id", "required")
	}
	if m.GetForget() {
		// The registry is replicated: any node forgets, none is asked.
		if m.GetState() != understudyv1.NodeState_NODE_STATE_UNSPECIFIED || m.GetCapacity() != 0 {
			return nil, invalid("forget", "cannot be combined with state or capacity")
		}
		switch err := a.node.ForgetNode(m.GetNodeId()); {
		case errors.Is(err, ErrNodeLive):
			return nil, connect.NewError(connect.CodeFailedPrecondition, err)
		case errors.Is(err, catalog.ErrNodeNotFound):
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %q is not a known node of this cluster (never registered, or forgotten already)", m.GetNodeId()))
		case err != nil:
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		a.log.Info("node forgotten", "node", m.GetNodeId())
		return connect.NewResponse(&understudyv1.UpdateNodeResponse{}), nil
	}
	var state string
	switch m.GetState() {
	case understudyv1.NodeState_NODE_STATE_UNSPECIFIED:
	case understudyv1.NodeState_NODE_STATE_ACTIVE:
		state = cluster.StateActive
	case understudyv1.NodeState_NODE_STATE_DRAINING:
		state = cluster.StateDraining
	default:
		return nil, invalid("state", "must be NODE_STATE_ACTIVE or NODE_STATE_DRAINING (a node marks itself saturated, and clears the mark, by itself)")
	}
	if m.GetCapacity() > placement.MaxNodeWeight {
		return nil, invalid("capacity", "must be between 1 and %d, got %d", placement.MaxNodeWeight, m.GetCapacity())
	}
	if state == "" && m.GetCapacity() == 0 {
		return nil, invalid("state", "nothing to change: give a state, a capacity or both")
	}
	if id := m.GetNodeId(); id != a.cfg.ID {
		return a.forwardUpdateNode(ctx, req)
	}
	ns, err := a.node.UpdateSettings(state, int(m.GetCapacity()))
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	a.log.Info("node settings changed", "state", ns.State, "weight", ns.Weight)
	return connect.NewResponse(&understudyv1.UpdateNodeResponse{Node: a.nodeProto()}), nil
}

// forwardUpdateNode passes an UpdateNode to the node it names. A call
// that came from a peer is not passed on again: the two nodes disagree
// on the membership, and the caller may try again.
func (a api) forwardUpdateNode(ctx context.Context, req *connect.Request[understudyv1.UpdateNodeRequest]) (*connect.Response[understudyv1.UpdateNodeResponse], error) {
	id := req.Msg.GetNodeId()
	if role, _ := a.auth.Authenticate(req.Header().Get("Authorization")); role == RolePeer {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %q is not this node (%s): membership is changing, try again", id, a.cfg.ID))
	}
	var target *peer
	if a.cl != nil {
		for _, mb := range a.cl.Members() {
			if mb.ID != id {
				continue
			}
			if !mb.Alive || mb.Left || mb.APIAddress == "" {
				return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %q is down: its settings change when it is back", id))
			}
			target = &peer{mb.ID, mb.APIAddress}
		}
	}
	if target == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %q is not a node of this cluster", id))
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	client := understudyv1connect.NewClusterServiceClient(a.peerHTTP(), a.peerURL(target.api))
	resp, err := client.UpdateNode(ctx, connect.NewRequest(req.Msg))
	if err != nil {
		if ce := new(connect.Error); errors.As(err, &ce) && ce.Code() != connect.CodeUnknown {
			return nil, connect.NewError(ce.Code(), fmt.Errorf("node %s: %s", id, ce.Message()))
		}
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s did not answer: %v", id, err))
	}
	return connect.NewResponse(resp.Msg), nil
}

// registryOnly lists, as down, the nodes of the known-node registry that
// are not among listed (memberlist forgot them, or never saw them): the
// nodes placement counts as failed, so that ListNodes shows them and the
// dry-run (ctl placement plan) places as the nodes do.
func (s *Server) registryOnly(listed []*understudyv1.Node) []*understudyv1.Node {
	var out []*understudyv1.Node
	for _, r := range s.catalog.Nodes() {
		if r.State != cluster.StateActive || slices.ContainsFunc(listed, func(x *understudyv1.Node) bool { return x.Id == r.ID }) {
			continue
		}
		out = append(out, &understudyv1.Node{Id: r.ID, Domain: r.Domain, Capacity: float64(r.Weight), State: understudyv1.NodeState_NODE_STATE_DOWN})
	}
	return out
}
