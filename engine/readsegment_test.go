package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/api"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// readAll calls ReadSegment and returns the bytes and the first message's
// segment.
func readAll(rc understudyv1connect.RecordingServiceClient, req *understudyv1.ReadSegmentRequest) ([]byte, *understudyv1.Segment, error) {
	st, err := rc.ReadSegment(context.Background(), connect.NewRequest(req))
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	var data []byte
	var seg *understudyv1.Segment
	for st.Receive() {
		if s := st.Msg().GetSegment(); s != nil && seg == nil {
			seg = s
		}
		data = append(data, st.Msg().GetChunk()...)
	}
	return data, seg, st.Err()
}

// TestReadSegment: another node (any read role) copies a segment with
// ReadSegment, whole or from an offset, byte for byte as on disk and
// matching its checksum; a segment that is not there is NOT_FOUND, a
// corrupted one DATA_LOSS (and quarantined), never its bad bytes.
func TestReadSegment(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25, Bitrate: 4_000_000})
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		SegmentDuration: time.Second}
	n := runNode(t, cfg)
	if _, err := n.catalog.Create(catalog.Stream{ID: "cam", URL: cams.URL(0), Enabled: true}); err != nil {
		t.Fatal(err)
	}
	rc := understudyv1connect.NewRecordingServiceClient(client(testRead), "http://"+n.Addr())
	var seg *understudyv1.Segment
	for deadline := time.Now().Add(20 * time.Second); seg == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no closed segment in 20 s")
		}
		resp, err := rc.ListSegments(context.Background(), connect.NewRequest(&understudyv1.ListSegmentsRequest{StreamId: "cam", Start: timestamppb.New(time.Now().Add(-time.Hour)), End: timestamppb.New(time.Now().Add(time.Hour))}))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.Msg.Segments {
			if s.Checksum != "" && s.Bytes > api.ReadChunk+1000 {
				seg = s
				break
			}
		}
	}
	data, got, err := readAll(rc, &understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start, Checksum: seg.Checksum})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if "sha256:"+hex.EncodeToString(sum[:]) != seg.Checksum || uint64(len(data)) != seg.Bytes || got.GetBytes() != seg.Bytes || got.GetChecksum() != seg.Checksum {
		t.Fatalf("read %d bytes (checksum %x), first message %v; want the %d bytes of %s", len(data), sum, got, seg.Bytes, seg.Checksum)
	}
	tail, _, err := readAll(rc, &understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start, Offset: seg.Bytes - api.ReadChunk - 7})
	if err != nil || !bytes.Equal(tail, data[len(data)-api.ReadChunk-7:]) {
		t.Errorf("from an offset: %d bytes, %v; want the last %d", len(tail), err, api.ReadChunk+7)
	}
	if end, _, err := readAll(rc, &understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start, Offset: seg.Bytes}); err != nil || len(end) != 0 {
		t.Errorf("at the end: %d bytes, %v", len(end), err)
	}
	for _, tc := range []struct {
		req  *understudyv1.ReadSegmentRequest
		code connect.Code
	}{
		{&understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start, Offset: seg.Bytes + 1}, connect.CodeOutOfRange},
		{&understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start, Checksum: "sha256:00"}, connect.CodeNotFound},
		{&understudyv1.ReadSegmentRequest{StreamId: "cam", Start: timestamppb.New(seg.Start.AsTime().Add(time.Millisecond))}, connect.CodeNotFound},
		{&understudyv1.ReadSegmentRequest{StreamId: "cam"}, connect.CodeInvalidArgument},
		{&understudyv1.ReadSegmentRequest{StreamId: "nosuch", Start: seg.Start}, connect.CodeNotFound},
		{&understudyv1.ReadSegmentRequest{StreamId: "../x", Start: seg.Start}, connect.CodeInvalidArgument},
	} {
		if _, _, err := readAll(rc, tc.req); connect.CodeOf(err) != tc.code {
			t.Errorf("%v: %v, want %s", tc.req, err, tc.code)
		}
	}
	// Flip a byte of the file: DATA_LOSS, and the segment is gone from the
	// index, its file in quarantine.
	segs, err := n.store.Segments("cam", seg.Start.AsTime(), seg.Start.AsTime().Add(time.Nanosecond))
	if err != nil || len(segs) == 0 {
		t.Fatal(segs, err)
	}
	path := filepath.Join(cfg.DataDir, filepath.FromSlash(segs[0].Path))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x55
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// The node hashes as it sends: the stream ends in DATA_LOSS after
	// the chunks, and a copier keeps none of them.
	if b, _, err := readAll(rc, &understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start}); connect.CodeOf(err) != connect.CodeDataLoss {
		t.Errorf("corrupted segment: %d bytes, %v; want DATA_LOSS", len(b), err)
	}
	if _, _, err := readAll(rc, &understudyv1.ReadSegmentRequest{StreamId: "cam", Start: seg.Start}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("after the quarantine: %v, want NOT_FOUND", err)
	}
}

// TestUpdateNodeSelf: UpdateNode drains a node and sets its weight (admin
// only); the settings survive a restart over the config's weight; bad
// settings change nothing.
func TestUpdateNodeSelf(t *testing.T) {
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead, Weight: 2}
	n := runNodeUntil(t, cfg)
	cc := func(n *Node, token string) understudyv1connect.ClusterServiceClient {
		return understudyv1connect.NewClusterServiceClient(client(token), "http://"+n.Addr())
	}
	ctx := context.Background()
	drain := &understudyv1.UpdateNodeRequest{NodeId: "n1", State: understudyv1.NodeState_NODE_STATE_DRAINING, Capacity: 7}
	if _, err := cc(n.Node, testRead).UpdateNode(ctx, connect.NewRequest(drain)); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("read token: %v, want PERMISSION_DENIED", err)
	}
	resp, err := cc(n.Node, testAdmin).UpdateNode(ctx, connect.NewRequest(drain))
	if err != nil {
		t.Fatal(err)
	}
	if nd := resp.Msg.Node; nd.State != understudyv1.NodeState_NODE_STATE_DRAINING || nd.Capacity != 7 {
		t.Errorf("after UpdateNode: %v", nd)
	}
	for _, bad := range []*understudyv1.UpdateNodeRequest{
		{NodeId: "n1", State: understudyv1.NodeState_NODE_STATE_DOWN},
		{NodeId: "n1", Capacity: 1<<20 + 1},
		{NodeId: "n1"},
		{State: understudyv1.NodeState_NODE_STATE_ACTIVE},
	} {
		if _, err := cc(n.Node, testAdmin).UpdateNode(ctx, connect.NewRequest(bad)); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%v: %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if _, err := cc(n.Node, testAdmin).UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{NodeId: "n9", State: understudyv1.NodeState_NODE_STATE_ACTIVE})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("unknown node: %v, want NOT_FOUND", err)
	}
	n.stop()
	n2 := runNodeUntil(t, cfg)
	nodes, err := cc(n2.Node, testRead).ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if nd := nodes.Msg.Nodes[0]; nd.State != understudyv1.NodeState_NODE_STATE_DRAINING || nd.Capacity != 7 {
		t.Errorf("after a restart: %v, want draining with weight 7", nd)
	}
	// A damaged settings file stops the start with a message naming it.
	n2.stop()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, nodeSettingsFile), []byte("{bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.EnsureDefaults()
	if _, err := OpenNode(cfg, quietLog()); err == nil || !bytes.Contains([]byte(err.Error()), []byte(nodeSettingsFile)) {
		t.Errorf("damaged settings file: %v", err)
	}
}

// stoppableNode is a running node a test stops before its end.
type stoppableNode struct {
	*Node
	stop func()
}

func runNodeUntil(t *testing.T, cfg Config) stoppableNode {
	t.Helper()
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := OpenNode(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	for !n.ready.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	return stoppableNode{n, stop}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
