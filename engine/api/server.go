package api

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/engine/events"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// Node is what the API needs of the node it serves, beyond the stores of
// Config: the node's live state (placement, sessions, settings, events).
// Package engine provides it over its Node.
type Node interface {
	// Placement returns, as of the last reconcile round, each enabled
	// stream's recorders, home first; PlacedOn those of one stream.
	Placement() map[string][]string
	PlacedOn(stream string) []string

	// StreamStatuses returns the status of each of streams as this node
	// judges it (its own sessions, and the peers' gossiped statuses),
	// judged against one view of the cluster. place is Placement; peers
	// holds, by stream and node, the recorders the other nodes reported
	// (see peerRecorders); localOnly: only this node's own recording.
	StreamStatuses(streams []catalog.Stream, place map[string][]string, peers map[string]map[string]*understudyv1.Recorder, localOnly bool) []*understudyv1.StreamStatus
	// LiveEdge returns the wall-clock time of the newest frame of a stream
	// this node records right now; OpenOutage the start of the camera
	// outage its session is in now.
	LiveEdge(stream string) (time.Time, bool)
	OpenOutage(stream string) (time.Time, bool)

	// Status is this node's own figures, for ListNodes.
	Status() NodeStatus
	// UpdateSettings changes this node's cluster state (if not empty) and
	// capacity weight (if not 0), keeping them in its data directory, and
	// returns the settings kept.
	UpdateSettings(state string, weight int) (Settings, error)
	// ForgetNode removes a node gone for good from the known-node
	// registry; an error wrapping ErrNodeLive for a live member.
	ForgetNode(id string) error

	// Subscribe subscribes to the node's event bus; Stopping is closed
	// when the node begins to shut down (ending WatchEvents streams).
	Subscribe(buf int) *events.Subscription
	Stopping() <-chan struct{}
	// Ready reports whether the node serves (GET /readyz).
	Ready() bool
	// PeerCredential is the cluster credential this node presents to its
	// peers, "" for none.
	PeerCredential() string
}

// NodeStatus is a node's own figures.
type NodeStatus struct {
	State              string // cluster state: active, draining or saturated
	Weight             int    // capacity weight
	Home, Replica      uint32 // the sessions it runs, by role
	CPUPercent         float64
	DiskUsed, DiskFree uint64
}

// Settings are the node settings an operator changed through the API
// (UpdateNode); empty or 0: the config's.
type Settings struct {
	State  string // active or draining
	Weight int    // capacity weight
}

// Config is what the API serves from: the node's identity, limits and
// stores.
type Config struct {
	ID, Domain  string
	Address     string // the advertised API address
	Version     string
	TLS         bool          // the API (this node's and its peers') is served over TLS
	MaxRange    time.Duration // the longest range a request may ask for
	EventBuffer int           // the buffer of a WatchEvents subscription
	MaxExports  int           // clip exports (and segment reads) at once

	Catalog *catalog.Catalog
	Store   *segment.Store
	Cluster *cluster.Cluster // nil: a lone node
	Auth    *Authenticator
	Metrics prometheus.Gatherer // served on GET /metrics
	// ParseTime reads the start and end of GET /v1/export.
	ParseTime func(s string, now time.Time) (time.Time, error)
	Logger    *slog.Logger
}

// Server serves the API of a node: the handlers of the three services of
// understudy.v1, the plain HTTP endpoints, and the federated reads over
// the peers.
type Server struct {
	cfg     Config
	node    Node
	catalog *catalog.Catalog
	store   *segment.Store
	cl      *cluster.Cluster
	auth    *Authenticator
	log     *slog.Logger
	// exports holds a token per clip export running (Config.MaxExports).
	exports chan struct{}
	clips   *clipCache // clips cut for players of GET /v1/export
}

// New returns the API server of node.
func New(cfg Config, node Node) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, node: node, catalog: cfg.Catalog, store: cfg.Store, cl: cfg.Cluster, auth: cfg.Auth, log: log,
		exports: make(chan struct{}, max(cfg.MaxExports, 1)), clips: newClipCache()}
}

// api implements the three services of understudy.v1 on a Server.
type api struct{ *Server }

// errTooManyExports refuses an export over Config.MaxExports.
var errTooManyExports = errors.New("too many clip exports running on this node; retry later")

// startExport takes an export slot, or fails with errTooManyExports when
// Config.MaxExports are running. The caller calls done when it ends.
func (s *Server) startExport() (done func(), err error) {
	select {
	case s.exports <- struct{}{}:
		return func() { <-s.exports }, nil
	default:
		return nil, fmt.Errorf("%w (max-exports %d)", errTooManyExports, cap(s.exports))
	}
}

// ErrNodeLive is returned by ForgetNode for a node that is a live member.
var ErrNodeLive = errors.New("node is live")
