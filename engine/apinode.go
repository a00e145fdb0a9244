package engine

import (
	"slices"
	"time"

	"github.com/understudy-nvr/understudy/engine/api"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/events"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// apiNode is what the API server (package api) reads of the node and
// asks of it: api.Node.
type apiNode struct{ n *Node }

var _ api.Node = apiNode{}

// newAPI returns the node's API server; the cluster, if any, is started.
func (n *Node) newAPI() *api.Server {
	return api.New(api.Config{
		ID: n.cfg.ID, Domain: n.cfg.Domain, Address: n.addr, Version: n.version, TLS: n.cfg.TLSCert != "",
		MaxRange: n.cfg.MaxRange, EventBuffer: n.cfg.EventBuffer, MaxExports: n.cfg.MaxExports,
		Catalog: n.catalog, Store: n.store, Cluster: n.cl, Auth: n.auth, Metrics: n.metrics.reg,
		ParseTime: ParseTime, Logger: n.log,
	}, apiNode{n})
}

func (a apiNode) Placement() map[string][]string { return a.n.Placement() }

func (a apiNode) PlacedOn(stream string) []string {
	a.n.placeMu.Lock()
	defer a.n.placeMu.Unlock()
	return slices.Clone(a.n.placed[stream])
}

func (a apiNode) StreamStatuses(streams []catalog.Stream, place map[string][]string, peers map[string]map[string]*understudyv1.Recorder, localOnly bool) []*understudyv1.StreamStatus {
	v := a.n.healthView()
	out := make([]*understudyv1.StreamStatus, len(streams))
	for i, s := range streams {
		out[i] = a.n.streamStatus(v, s, place[s.ID], peers[s.ID], localOnly)
	}
	return out
}

func (a apiNode) LiveEdge(stream string) (time.Time, bool) { return a.n.liveEdge(stream) }

func (a apiNode) OpenOutage(stream string) (time.Time, bool) { return a.n.openOutage(stream) }

func (a apiNode) Status() api.NodeStatus {
	var st api.NodeStatus
	st.DiskUsed, st.DiskFree = a.n.diskUsage()
	for _, r := range a.n.Roles() {
		if r == "home" {
			st.Home++
		} else {
			st.Replica++
		}
	}
	a.n.placeMu.Lock()
	st.State, st.Weight = a.n.stateLocked(), a.n.selfWeight
	a.n.placeMu.Unlock()
	st.CPUPercent = a.n.CPUPercent()
	return st
}

func (a apiNode) ForgetNode(id string) error { return a.n.ForgetNode(id) }

func (a apiNode) Subscribe(buf int) *events.Subscription { return a.n.bus.Subscribe(buf) }

func (a apiNode) Stopping() <-chan struct{} { return a.n.stopping }

func (a apiNode) Ready() bool { return a.n.ready.Load() }

func (a apiNode) PeerCredential() string {
	if t := a.n.peerToken.Load(); t != nil {
		return *t
	}
	return ""
}

// UpdateSettings changes this node's cluster state (if not empty) and
// capacity weight (if not 0): it keeps them in the settings file, then
// announces them (SetNodeState). It returns the settings kept.
func (a apiNode) UpdateSettings(state string, weight int) (api.Settings, error) {
	a.n.settingsMu.Lock()
	defer a.n.settingsMu.Unlock()
	ns, err := loadNodeSettings(a.n.cfg.DataDir)
	if err != nil {
		return api.Settings{}, err
	}
	if state != "" {
		ns.State = state
	}
	if weight > 0 {
		ns.Weight = weight
	}
	if err := ns.save(a.n.cfg.DataDir); err != nil {
		return api.Settings{}, err
	}
	if err := a.n.SetNodeState(state, weight); err != nil {
		return api.Settings{}, err
	}
	return api.Settings(ns), nil
}
