package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/events"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// fakeNode is a Node for the tests of the API alone: fixed figures, and a
// record of what the API asked of it.
type fakeNode struct {
	ready    atomic.Bool
	bus      *events.EventBus
	stopping chan struct{}
	status   NodeStatus
	forget   error    // ForgetNode's answer
	settings []string // the UpdateSettings calls, as "state/weight"
}

func (f *fakeNode) Placement() map[string][]string { return map[string][]string{} }
func (f *fakeNode) PlacedOn(string) []string       { return nil }
func (f *fakeNode) StreamStatuses(streams []catalog.Stream, _ map[string][]string, _ map[string]map[string]*understudyv1.Recorder, _ bool) []*understudyv1.StreamStatus {
	out := make([]*understudyv1.StreamStatus, len(streams))
	for i := range streams {
		out[i] = &understudyv1.StreamStatus{State: understudyv1.StreamState_STREAM_STATE_NOT_PLACED}
	}
	return out
}
func (f *fakeNode) LiveEdge(string) (time.Time, bool)   { return time.Time{}, false }
func (f *fakeNode) OpenOutage(string) (time.Time, bool) { return time.Time{}, false }
func (f *fakeNode) Status() NodeStatus                  { return f.status }
func (f *fakeNode) UpdateSettings(state string, weight int) (Settings, error) {
	f.settings = append(f.settings, fmt.Sprintf("%s/%d", state, weight))
	return Settings{State: state, Weight: weight}, nil
}
func (f *fakeNode) ForgetNode(string) error                { return f.forget }
func (f *fakeNode) Subscribe(buf int) *events.Subscription { return f.bus.Subscribe(buf) }
func (f *fakeNode) Stopping() <-chan struct{}              { return f.stopping }
func (f *fakeNode) Ready() bool                            { return f.ready.Load() }
func (f *fakeNode) PeerCredential() string                 { return "" }

const testAdmin = "admin-token-test"

// testServer serves a Server over a fake node from an httptest server.
func testServer(t *testing.T) (*fakeNode, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := catalog.OpenDB(t.TempDir(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat, err := catalog.Open(catalog.Config{DB: db, NodeID: "n1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{bus: events.NewEventBus(), stopping: make(chan struct{}),
		status: NodeStatus{State: "draining", Weight: 3, Home: 2, Replica: 1, CPUPercent: 12.5, DiskUsed: 10, DiskFree: 20}}
	s := New(Config{ID: "n1", Domain: "rack1", Address: "10.0.0.1:7000", Version: "v-test", MaxRange: 24 * time.Hour, EventBuffer: 16,
		MaxExports: 1, Catalog: cat, Store: testkit.OpenStore(t), Auth: NewAuthenticator(testAdmin, "", false),
		Metrics: prometheus.NewRegistry(), ParseTime: func(s string, _ time.Time) (time.Time, error) { return time.Parse(time.RFC3339, s) },
		Logger: log}, f)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func bearer[T any](m *T) *connect.Request[T] {
	r := connect.NewRequest(m)
	r.Header().Set("Authorization", "Bearer "+testAdmin)
	return r
}

// TestServerReadsTheNode: the API answers from what the node provides
// (its readiness, its figures) and passes the node's settings changes and
// forgets to it, mapping its errors to their codes.
func TestServerReadsTheNode(t *testing.T) {
	f, srv := testServer(t)
	ready := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the node is ready: %d, want 503", got)
	}
	f.ready.Store(true)
	if got := ready(); got != http.StatusOK {
		t.Errorf("/readyz once the node is ready: %d, want 200", got)
	}

	ctx := context.Background()
	cc := understudyv1connect.NewClusterServiceClient(http.DefaultClient, srv.URL)
	nodes, err := cc.ListNodes(ctx, bearer(&understudyv1.ListNodesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Msg.Nodes) != 1 {
		t.Fatalf("ListNodes of a lone node: %v", nodes.Msg.Nodes)
	}
	nd := nodes.Msg.Nodes[0]
	if nd.Id != "n1" || nd.Domain != "rack1" || nd.ApiAddress != "10.0.0.1:7000" || nd.Version != "v-test" ||
		nd.State != understudyv1.NodeState_NODE_STATE_DRAINING || nd.Capacity != 3 || nd.HomeStreams != 2 || nd.ReplicaStreams != 1 ||
		nd.CpuPercent != 12.5 || nd.DiskUsedBytes != 10 || nd.DiskFreeBytes != 20 {
		t.Errorf("ListNodes: %v", nd)
	}

	if _, err := cc.UpdateNode(ctx, bearer(&understudyv1.UpdateNodeRequest{NodeId: "n1", State: understudyv1.NodeState_NODE_STATE_ACTIVE, Capacity: 4})); err != nil {
		t.Fatal(err)
	}
	if len(f.settings) != 1 || f.settings[0] != "active/4" {
		t.Errorf("UpdateNode asked the node for %v, want [active/4]", f.settings)
	}
	if _, err := cc.UpdateNode(ctx, bearer(&understudyv1.UpdateNodeRequest{NodeId: "n1"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("UpdateNode with nothing to change: %v, want invalid_argument", err)
	}
	if len(f.settings) != 1 {
		t.Errorf("a refused UpdateNode reached the node: %v", f.settings)
	}

	f.forget = fmt.Errorf("node %q: %w", "n2", ErrNodeLive)
	if _, err := cc.UpdateNode(ctx, bearer(&understudyv1.UpdateNodeRequest{NodeId: "n2", Forget: true})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("forgetting a live node: %v, want failed_precondition", err)
	}
	f.forget = catalog.ErrNodeNotFound
	if _, err := cc.UpdateNode(ctx, bearer(&understudyv1.UpdateNodeRequest{NodeId: "n2", Forget: true})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("forgetting an unknown node: %v, want not_found", err)
	}
	f.forget = errors.New("disk on fire")
	if _, err := cc.UpdateNode(ctx, bearer(&understudyv1.UpdateNodeRequest{NodeId: "n2", Forget: true})); connect.CodeOf(err) != connect.CodeInternal {
		t.Errorf("a failing forget: %v, want internal", err)
	}
}

// TestWatchEventsEndsWhenTheNodeStops: a WatchEvents stream gets the
// node's events and ends when the node begins to stop.
func TestWatchEventsEndsWhenTheNodeStops(t *testing.T) {
	f, srv := testServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := understudyv1connect.NewClusterServiceClient(http.DefaultClient, srv.URL)
	st, err := cc.WatchEvents(ctx, bearer(&understudyv1.WatchEventsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.bus.Publish(events.Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_JOINED, Node: "n2", Message: "node joined"})
	if !st.Receive() {
		t.Fatalf("no event: %v", st.Err())
	}
	if ev := st.Msg().GetEvent(); ev.GetNodeId() != "n2" || ev.GetKind() != understudyv1.EventKind_EVENT_KIND_NODE_JOINED {
		t.Errorf("event %v", ev)
	}
	close(f.stopping)
	if st.Receive() {
		t.Errorf("an event after the node began to stop: %v", st.Msg())
	}
	if err := st.Err(); err != nil {
		t.Errorf("the stream ended with %v, want a clean end", err)
	}
}
