package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// refusedAddr is a local TCP address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestStreamHealth: a node with a healthy camera, a refused port, a
// wrong path (404) and a camera whose credentials it lacks (401) lists
// four different states with their reasons, within seconds; the per-state
// gauge counts them; no response or metric holds the camera's password.
func TestStreamHealth(t *testing.T) {
	open := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	const secret = "s3cret-camera-pw"
	locked := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25, User: "admin", Pass: secret})
	n := runNode(t, Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead})
	ctx := context.Background()
	base := "http://" + n.Addr()
	sc := understudyv1connect.NewStreamServiceClient(client(testAdmin), base)
	lockedURL := strings.Replace(locked.URL(0), "admin:"+secret+"@", "", 1)
	streams := []*understudyv1.Stream{
		{Id: "healthy", Url: open.URL(0), Enabled: true},
		{Id: "refused", Url: "rtsp://" + refusedAddr(t) + "/cam/0", Enabled: true},
		{Id: "wrongpath", Url: strings.Replace(open.URL(0), "/cam/0", "/cam/99", 1), Enabled: true},
		// Credentials the camera does not accept: a wrong password.
		{Id: "badcreds", Url: lockedURL, Credentials: &understudyv1.Credentials{Username: "admin", Password: "wrong-" + secret}, Enabled: true},
		{Id: "off", Url: open.URL(0), Enabled: false},
	}
	created := time.Now()
	for _, s := range streams {
		if _, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{Stream: s})); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]understudyv1.StreamState{
		"healthy":   understudyv1.StreamState_STREAM_STATE_RECORDING,
		"refused":   understudyv1.StreamState_STREAM_STATE_CAMERA_UNREACHABLE,
		"wrongpath": understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND,
		"badcreds":  understudyv1.StreamState_STREAM_STATE_CAMERA_AUTH_FAILED,
		"off":       understudyv1.StreamState_STREAM_STATE_DISABLED,
	}
	var got map[string]*understudyv1.Stream
	deadline := time.Now().Add(30 * time.Second) // 10 s on an idle machine; this one is shared
	for {
		resp, err := sc.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]*understudyv1.Stream{}
		ok := true
		for _, s := range resp.Msg.Streams {
			got[s.Id] = s
			if s.GetStatus().GetState() != want[s.Id] {
				ok = false
			}
		}
		if ok && len(got) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			for id, s := range got {
				t.Logf("%s: %v", id, s.GetStatus())
			}
			t.Fatalf("states not as expected after %s", time.Since(created).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("four different states after %s", time.Since(created).Round(time.Millisecond))
	for id, s := range got {
		st := s.GetStatus()
		t.Logf("%s: %s since %v: %q recorders %v", id, StateName(st.State), st.GetSince().AsTime(), st.Reason, st.Recorders)
		if strings.Contains(fmt.Sprint(st), secret) {
			t.Errorf("%s: status holds the camera password: %v", id, st)
		}
		if id == "off" {
			continue
		}
		if len(st.Recorders) != 1 || st.Recorders[0].NodeId != "n1" || st.Recorders[0].Role != "home" {
			t.Errorf("%s: recorders %v, want n1 home", id, st.Recorders)
		}
		if st.Since == nil || st.Since.AsTime().Before(created.Add(-time.Second)) || st.Since.AsTime().After(time.Now()) {
			t.Errorf("%s: since %v, want between the creation and now", id, st.GetSince())
		}
	}
	if st := got["healthy"].GetStatus(); st.LastFrameTime == nil || time.Since(st.LastFrameTime.AsTime()) > 10*time.Second || st.Reason != "" {
		t.Errorf("healthy: last frame %v, reason %q; want a recent frame and no reason", st.GetLastFrameTime(), st.Reason)
	}
	for id, words := range map[string]string{"refused": "refused", "wrongpath": "path", "badcreds": "credentials"} {
		if r := got[id].GetStatus().GetReason(); !strings.Contains(r, words) {
			t.Errorf("%s: reason %q does not say %q", id, r, words)
		}
	}
	// GetStream says the same, and with node_id set to this node too.
	for _, node := range []string{"", "n1"} {
		g, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "wrongpath", NodeId: node}))
		if err != nil {
			t.Fatal(err)
		}
		if g.Msg.Stream.GetStatus().GetState() != understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND {
			t.Errorf("GetStream node %q: %v", node, g.Msg.Stream.GetStatus())
		}
	}
	if _, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "healthy", NodeId: "n9"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("GetStream of an unknown node: %v, want INVALID_ARGUMENT", err)
	}

	// The gauge counts each state.
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testRead)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		MetricStreamsByState + `{state="recording"} 1`,
		MetricStreamsByState + `{state="camera_unreachable"} 1`,
		MetricStreamsByState + `{state="camera_not_found"} 1`,
		MetricStreamsByState + `{state="camera_auth_failed"} 1`,
		MetricStreamsByState + `{state="disabled"} 1`,
		MetricStreamsByState + `{state="starting"} 0`,
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	if strings.Contains(string(body), secret) {
		t.Error("metrics hold the camera password")
	}

	// The timeline starts when the stream was created: over the hour
	// before, no gap (it did not exist), and the camera that cannot be
	// reached has a source gap from its creation on, not a system one.
	rc := understudyv1connect.NewRecordingServiceClient(client(testRead), base)
	for _, id := range []string{"healthy", "refused"} {
		createTime := got[id].GetCreateTime().AsTime()
		var tl *connect.Response[understudyv1.GetTimelineResponse]
		for wait := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			var err error
			tl, err = rc.GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: id,
				Start: timestamppb.New(createTime.Add(-time.Hour)), End: timestamppb.New(time.Now())}))
			if err != nil {
				t.Fatal(err)
			}
			// The healthy stream's first part must be durable first.
			if id != "healthy" || len(tl.Msg.Coverage) > 0 || time.Now().After(wait) {
				break
			}
		}
		for _, g := range tl.Msg.Gaps {
			if g.Start.AsTime().Before(createTime) {
				t.Errorf("%s: gap %s..%s before its creation at %s", id, g.Start.AsTime(), g.End.AsTime(), createTime)
			}
			if id == "refused" && g.Kind != understudyv1.GapKind_GAP_KIND_SOURCE && g.End.AsTime().Sub(g.Start.AsTime()) > time.Second {
				t.Errorf("%s: %s gap %s..%s, want a source gap", id, g.Kind, g.Start.AsTime(), g.End.AsTime())
			}
		}
		if id == "healthy" && len(tl.Msg.Coverage) == 0 {
			t.Errorf("healthy: no coverage")
		}
		if id == "refused" && len(tl.Msg.Gaps) == 0 {
			t.Errorf("refused: no gap at all")
		}
	}

	// Stopping says its reason once and precisely.
	sub := n.bus.Subscribe(256)
	defer sub.Close()
	if _, err := sc.UpdateStream(ctx, connect.NewRequest(&understudyv1.UpdateStreamRequest{
		Stream: &understudyv1.Stream{Id: "healthy", Enabled: false}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.DeleteStream(ctx, connect.NewRequest(&understudyv1.DeleteStreamRequest{Id: "refused"})); err != nil {
		t.Fatal(err)
	}
	stopped := map[string]Event{}
	timeout := time.After(20 * time.Second)
	for len(stopped) < 2 {
		select {
		case e := <-sub.C:
			if e.Kind == understudyv1.EventKind_EVENT_KIND_RECORDING_STOPPED {
				stopped[e.Stream] = e
			}
		case <-timeout:
			t.Fatalf("RECORDING_STOPPED events: %v", stopped)
		}
	}
	for id, want := range map[string]string{"healthy": "disabled by an operator", "refused": "deleted"} {
		e := stopped[id]
		if e.Message != "recording stopped: "+want || e.Details["reason"] != want {
			t.Errorf("%s stopped: message %q, reason %q; want %q", id, e.Message, e.Details["reason"], want)
		}
	}
}

// TestStreamHealthAcrossNodes: any node shows the state of every recorder
// of a stream, the other nodes' included: asked with node_id set, a peer
// reports its own recording (its frames' time, a 404 as such); without
// its answer, its gossiped status still says whether it records.
func TestStreamHealthAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("two nodes and their gossip: about 10 s")
	}
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25, Bitrate: 300_000})
	var nodes []*Node
	var stopN2 func()
	for i := range 2 {
		ft, err := cluster.NewFaultTransport("127.0.0.1", 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{ID: fmt.Sprintf("n%d", i+1), Domain: fmt.Sprintf("rack=r%d", i+1), DataDir: t.TempDir(),
			Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
			GossipListen: "127.0.0.1:" + strconv.Itoa(ft.GetAutoBindPort()), GossipTransport: ft,
			InsecureGossip: true, RejoinHold: time.Second}
		if i > 0 {
			cfg.Join = nodes[0].cfg.GossipListen
		}
		sn := runNodeUntil(t, cfg)
		nodes = append(nodes, sn.Node)
		stopN2 = sn.stop
	}
	for _, s := range []catalog.Stream{
		{ID: "both", URL: cams.URL(0), Enabled: true, Replicas: 2},
		{ID: "nopath", URL: strings.Replace(cams.URL(0), "/cam/0", "/cam/99", 1), Enabled: true, Replicas: 2},
	} {
		if _, err := nodes[0].catalog.Create(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	sc := understudyv1connect.NewStreamServiceClient(client(testRead), "http://"+nodes[0].Addr())
	var got map[string]*understudyv1.StreamStatus
	ready := func() bool {
		resp, err := sc.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]*understudyv1.StreamStatus{}
		for _, s := range resp.Msg.Streams {
			got[s.Id] = s.Status
		}
		b, p := got["both"], got["nopath"]
		if b.GetState() != understudyv1.StreamState_STREAM_STATE_RECORDING || len(b.GetRecorders()) != 2 ||
			p.GetState() != understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND || len(p.GetRecorders()) != 2 {
			return false
		}
		for _, r := range append(b.Recorders, p.Recorders...) {
			if r.NodeId == "n2" && r.State == understudyv1.StreamState_STREAM_STATE_STARTING {
				return false
			}
		}
		return true
	}
	start := time.Now()
	for !ready() {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no cluster-wide status after %s: %v", time.Since(start), got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("both recorders' states seen on n1 after %s: %v", time.Since(start).Round(time.Millisecond), got)
	for _, r := range got["both"].Recorders {
		if r.State != understudyv1.StreamState_STREAM_STATE_RECORDING || r.LastFrameTime == nil || r.Since == nil {
			t.Errorf("both: recorder %v, want recording with a last frame and a since", r)
		}
	}
	roles := map[string]bool{}
	for _, r := range got["nopath"].Recorders {
		roles[r.Role] = true
		if r.State != understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND || !strings.Contains(r.Reason, "404") {
			t.Errorf("nopath: recorder %v, want camera_not_found (404)", r)
		}
	}
	if !roles["home"] || !roles["replica"] {
		t.Errorf("nopath: roles %v, want a home and a replica", roles)
	}
	// node_id set to the other node: its own view, through this one.
	g, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "nopath", NodeId: "n2"}))
	if err != nil {
		t.Fatal(err)
	}
	if st := g.Msg.Stream.Status; len(st.Recorders) != 1 || st.Recorders[0].NodeId != "n2" || st.State != understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND {
		t.Errorf("GetStream node n2: %v", st)
	}
	// Without the peer's answer, its gossiped status stands in.
	n1 := nodes[0]
	place := n1.Placement()
	for id, want := range map[string]understudyv1.StreamState{
		"both":   understudyv1.StreamState_STREAM_STATE_RECORDING,
		"nopath": understudyv1.StreamState_STREAM_STATE_FAILING,
	} {
		s, _ := n1.catalog.Get(id)
		st := n1.streamStatus(n1.healthView(), s, place[id], nil, false)
		for _, r := range st.Recorders {
			if r.NodeId == "n2" && r.State != want {
				t.Errorf("%s: n2 from gossip %v, want %s", id, r, want)
			}
		}
	}
	// One recorder receives media, the other reports a failure: the
	// stream is under-replicated, and the reason names the one short.
	s, _ := n1.catalog.Get("both")
	st := n1.streamStatus(n1.healthView(), s, place["both"], map[string]*understudyv1.Recorder{
		"n2": {NodeId: "n2", State: understudyv1.StreamState_STREAM_STATE_CAMERA_UNREACHABLE, Reason: "i/o timeout", Since: timestamppb.Now()},
	}, false)
	if st.State != understudyv1.StreamState_STREAM_STATE_UNDER_REPLICATED || !strings.Contains(st.Reason, "n2: camera_unreachable: i/o timeout") ||
		!strings.Contains(st.Reason, "1 of 2") || st.Since == nil {
		t.Errorf("one of two recording: %v, want under_replicated naming n2", st)
	}
	// n2 leaves: its own view cannot be had, and the answer says so;
	// the stream is placed on n1 alone, which records it.
	stopN2()
	var resp *connect.Response[understudyv1.GetStreamResponse]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		resp, err = sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "both", NodeId: "n2"}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header().Get("Understudy-Partial") == "n2" || time.Now().After(deadline) {
			break
		}
	}
	if h := resp.Header().Get("Understudy-Partial"); h != "n2" || len(resp.Msg.Stream.Status.GetRecorders()) != 0 {
		t.Errorf("GetStream node n2 after it left: partial %q, status %v; want n2 named and no recorder", h, resp.Msg.Stream.Status)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		g, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "both"}))
		if err != nil {
			t.Fatal(err)
		}
		st := g.Msg.Stream.Status
		if st.State == understudyv1.StreamState_STREAM_STATE_RECORDING && len(st.Recorders) == 1 && st.Recorders[0].NodeId == "n1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after n2 left: %v, want recorded by n1 alone", st)
		}
	}
}

// TestStreamHealthStarting: a camera joined mid-GOP of a long GOP answers
// PLAY but sends no keyframe for seconds: the stream is starting, waiting
// for its first keyframe, not failing, and the gauge counts it so.
func TestStreamHealthStarting(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, FPS: 25, GOP: 250}) // an IDR every 10 s
	time.Sleep(time.Second)                                                       // join a second into the GOP
	n := runNode(t, Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead})
	sc := understudyv1connect.NewStreamServiceClient(client(testAdmin), "http://"+n.Addr())
	ctx := context.Background()
	created := time.Now()
	if _, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{
		Stream: &understudyv1.Stream{Id: "slow", Url: cams.URL(0), Enabled: true}})); err != nil {
		t.Fatal(err)
	}
	var st *understudyv1.StreamStatus
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		g, err := sc.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "slow"}))
		if err != nil {
			t.Fatal(err)
		}
		if st = g.Msg.Stream.Status; strings.Contains(st.Reason, "keyframe") {
			break
		}
	}
	if st.State != understudyv1.StreamState_STREAM_STATE_STARTING || !strings.Contains(st.Reason, "waiting for the first keyframe") ||
		st.Since == nil || st.Since.AsTime().Before(created.Add(-time.Second)) {
		t.Fatalf("a second into a 10 s GOP: %v, want starting, waiting for the first keyframe, since its start", st)
	}
	if c := n.stateCounts()[understudyv1.StreamState_STREAM_STATE_STARTING]; c != 1 {
		t.Errorf("gauge: %d starting, want 1", c)
	}
}
