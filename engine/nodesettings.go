package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/placement"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// Node settings that belong to the cluster: an operator sets them through
// any node (UpdateNode), the node they concern keeps them in its data
// directory, so a restart keeps them over the config file's weight, and
// announces them in its membership metadata.

// nodeSettingsFile is the file, in the data directory, of the settings
// UpdateNode made.
const nodeSettingsFile = "node-settings.json"

type nodeSettings struct {
	State  string `json:"state,omitempty"`  // active or draining
	Weight int    `json:"weight,omitempty"` // capacity weight
}

// loadNodeSettings reads the settings file of dir; none is no settings.
func loadNodeSettings(dir string) (nodeSettings, error) {
	path := filepath.Join(dir, nodeSettingsFile)
	var ns nodeSettings
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ns, nil
	}
	if err != nil {
		return ns, err
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return ns, fmt.Errorf("%s: %v (remove the file to use the config's settings)", path, err)
	}
	if ns.State != "" && ns.State != cluster.StateActive && ns.State != cluster.StateDraining {
		return ns, fmt.Errorf("%s: state %q: must be %q or %q (remove the file to use the config's settings)", path, ns.State, cluster.StateActive, cluster.StateDraining)
	}
	if ns.Weight < 0 || ns.Weight > placement.MaxNodeWeight {
		return ns, fmt.Errorf("%s: weight %d: must be between 1 and %d (remove the file to use the config's settings)", path, ns.Weight, placement.MaxNodeWeight)
	}
	return ns, nil
}

// save writes the settings file of dir: a new file fsynced and renamed
// over the old one, so a crash leaves one or the other.
func (ns nodeSettings) save(dir string) error {
	b, err := json.MarshalIndent(ns, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, nodeSettingsFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save node settings: %w", err)
	}
	return nil
}

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
		switch err := a.n.ForgetNode(m.GetNodeId()); {
		case errors.Is(err, ErrNodeLive):
			return nil, connect.NewError(connect.CodeFailedPrecondition, err)
		case errors.Is(err, catalog.ErrNodeNotFound):
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("node %q is not a known node of this cluster (never registered, or forgotten already)", m.GetNodeId()))
		case err != nil:
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		a.n.log.Info("node forgotten", "node", m.GetNodeId())
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
	if id := m.GetNodeId(); id != a.n.cfg.ID {
		return a.forwardUpdateNode(ctx, req)
	}
	a.n.settingsMu.Lock()
	defer a.n.settingsMu.Unlock()
	ns, err := loadNodeSettings(a.n.cfg.DataDir)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	if state != "" {
		ns.State = state
	}
	if c := m.GetCapacity(); c > 0 {
		ns.Weight = int(c)
	}
	if err := ns.save(a.n.cfg.DataDir); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	if err := a.n.SetNodeState(state, int(m.GetCapacity())); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	a.n.log.Info("node settings changed", "state", ns.State, "weight", ns.Weight)
	return connect.NewResponse(&understudyv1.UpdateNodeResponse{Node: a.nodeProto()}), nil
}

// forwardUpdateNode passes an UpdateNode to the node it names. A call
// that came from a peer is not passed on again: the two nodes disagree
// on the membership, and the caller may try again.
func (a api) forwardUpdateNode(ctx context.Context, req *connect.Request[understudyv1.UpdateNodeRequest]) (*connect.Response[understudyv1.UpdateNodeResponse], error) {
	id := req.Msg.GetNodeId()
	if role, _ := a.n.auth.Authenticate(req.Header().Get("Authorization")); role == RolePeer {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %q is not this node (%s): membership is changing, try again", id, a.n.cfg.ID))
	}
	var target *peer
	if a.n.cl != nil {
		for _, mb := range a.n.cl.Members() {
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
	client := understudyv1connect.NewClusterServiceClient(a.n.peerHTTP(), a.n.peerURL(target.api))
	resp, err := client.UpdateNode(ctx, connect.NewRequest(req.Msg))
	if err != nil {
		if ce := new(connect.Error); errors.As(err, &ce) && ce.Code() != connect.CodeUnknown {
			return nil, connect.NewError(ce.Code(), fmt.Errorf("node %s: %s", id, ce.Message()))
		}
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("node %s did not answer: %v", id, err))
	}
	return connect.NewResponse(resp.Msg), nil
}

// ErrNodeLive is returned by ForgetNode for a node that is a live member.
var ErrNodeLive = errors.New("node is live")

// ForgetNode removes a node gone for good from the known-node registry:
// placement stops counting it as failed, and its copies are placed as if
// it never existed (which moves the homes and copies the placement without
// it gives). A live node cannot be forgotten: drain it and stop it first.
func (n *Node) ForgetNode(id string) error {
	if id == n.cfg.ID {
		return fmt.Errorf("node %q: %w: it is this node", id, ErrNodeLive)
	}
	if n.cl != nil {
		for _, m := range n.cl.Members() {
			if m.ID == id && m.Alive {
				return fmt.Errorf("node %q: %w: stop it before forgetting it (a live node registers itself again)", id, ErrNodeLive)
			}
		}
	}
	if err := n.catalog.ForgetNode(id); err != nil {
		return err
	}
	// What it held is gone with it: reads stop asking for it.
	for _, h := range n.catalog.HoldingsOf(id) {
		if err := n.catalog.DropHolding(h.Stream, id); err != nil {
			n.log.Warn("forget node: cannot drop a holding", "node", id, "stream", h.Stream, "err", err)
		}
	}
	n.poke()
	return nil
}

// registryOnly lists, as down, the nodes of the known-node registry that
// are not among listed (memberlist forgot them, or never saw them): the
// nodes placement counts as failed, so that ListNodes shows them and the
// dry-run (ctl placement plan) places as the nodes do.
func (n *Node) registryOnly(listed []*understudyv1.Node) []*understudyv1.Node {
	var out []*understudyv1.Node
	for _, r := range n.catalog.Nodes() {
		if r.State != cluster.StateActive || slices.ContainsFunc(listed, func(x *understudyv1.Node) bool { return x.Id == r.ID }) {
			continue
		}
		out = append(out, &understudyv1.Node{Id: r.ID, Domain: r.Domain, Capacity: float64(r.Weight), State: understudyv1.NodeState_NODE_STATE_DOWN})
	}
	return out
}
