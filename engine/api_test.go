package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/engine/catalog"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

const (
	testAdmin = "admin-token-test"
	testRead  = "read-token-test"
)

// testNode opens a node in a temp dir and serves its handler from an
// httptest server (no recording loop: the API alone).
func testNode(t testing.TB, mutate func(*Config)) (*Node, *httptest.Server) {
	t.Helper()
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := OpenNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	n.ready.Store(true)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		srv.Close()
		n.closeStorage()
	})
	return n, srv
}

type tokenTransport struct{ token string }

func (tt tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if tt.token != "" {
		r.Header.Set("Authorization", "Bearer "+tt.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func client(token string) *http.Client { return &http.Client{Transport: tokenTransport{token}} }

func TestAuthAndValidation(t *testing.T) {
	n, srv := testNode(t, nil)
	ctx := context.Background()
	streams := func(token string) understudyv1connect.StreamServiceClient {
		return understudyv1connect.NewStreamServiceClient(client(token), srv.URL)
	}
	rec := func(token string) understudyv1connect.RecordingServiceClient {
		return understudyv1connect.NewRecordingServiceClient(client(token), srv.URL)
	}
	good := &understudyv1.Stream{Id: "cam1", Url: "rtsp://127.0.0.1:1/x"}
	create := func(token string, s *understudyv1.Stream) error {
		_, err := streams(token).CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{Stream: s}))
		return err
	}
	if err := create(testAdmin, good); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ts := timestamppb.New
	cases := []struct {
		name  string
		call  func() error
		code  connect.Code
		field string // the message must name it
	}{
		{"no token, read", func() error {
			_, err := streams("").ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{}))
			return err
		}, connect.CodeUnauthenticated, ""},
		{"no token, write", func() error { return create("", &understudyv1.Stream{Id: "x1", Url: "rtsp://h/x"}) }, connect.CodeUnauthenticated, ""},
		{"wrong token", func() error { return create("nope", &understudyv1.Stream{Id: "x2", Url: "rtsp://h/x"}) }, connect.CodeUnauthenticated, ""},
		{"read token on a write", func() error { return create(testRead, &understudyv1.Stream{Id: "x3", Url: "rtsp://h/x"}) }, connect.CodePermissionDenied, ""},
		{"read token on a delete", func() error {
			_, err := streams(testRead).DeleteStream(ctx, connect.NewRequest(&understudyv1.DeleteStreamRequest{Id: "cam1"}))
			return err
		}, connect.CodePermissionDenied, ""},
		{"read token on a streaming read", func() error {
			st, err := rec("").ExportClip(ctx, connect.NewRequest(&understudyv1.ExportClipRequest{StreamId: "cam1"}))
			if err != nil {
				return err
			}
			for st.Receive() {
			}
			return st.Err()
		}, connect.CodeUnauthenticated, ""},
		{"bad id", func() error { return create(testAdmin, &understudyv1.Stream{Id: "../etc", Url: "rtsp://h/x"}) }, connect.CodeInvalidArgument, "stream.id"},
		{"bad url scheme", func() error { return create(testAdmin, &understudyv1.Stream{Id: "y1", Url: "http://h/x"}) }, connect.CodeInvalidArgument, "stream.url"},
		{"url with credentials", func() error { return create(testAdmin, &understudyv1.Stream{Id: "y2", Url: "rtsp://u:p@h/x"}) }, connect.CodeInvalidArgument, "stream.url"},
		{"replicas too many", func() error {
			return create(testAdmin, &understudyv1.Stream{Id: "y3", Url: "rtsp://h/x", Replicas: 9})
		}, connect.CodeInvalidArgument, "stream.replicas"},
		{"negative retention", func() error {
			return create(testAdmin, &understudyv1.Stream{Id: "y4", Url: "rtsp://h/x", ArchiveRetention: durationpb.New(-time.Hour)})
		}, connect.CodeInvalidArgument, "stream.archive_retention"},
		{"missing stream", func() error { return create(testAdmin, nil) }, connect.CodeInvalidArgument, "stream"},
		{"duplicate", func() error { return create(testAdmin, good) }, connect.CodeAlreadyExists, ""},
		{"update without mask", func() error {
			_, err := streams(testAdmin).UpdateStream(ctx, connect.NewRequest(&understudyv1.UpdateStreamRequest{Stream: good}))
			return err
		}, connect.CodeInvalidArgument, "update_mask"},
		{"update bad mask path", func() error {
			_, err := streams(testAdmin).UpdateStream(ctx, connect.NewRequest(&understudyv1.UpdateStreamRequest{Stream: good,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"colour"}}}))
			return err
		}, connect.CodeInvalidArgument, "update_mask"},
		{"get unknown", func() error {
			_, err := streams(testRead).GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: "nope"}))
			return err
		}, connect.CodeNotFound, ""},
		{"bad page token", func() error {
			_, err := streams(testRead).ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{PageToken: "garbage"}))
			return err
		}, connect.CodeInvalidArgument, "page_token"},
		{"timeline end before start", func() error {
			_, err := rec(testRead).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "cam1", Start: ts(now), End: ts(now.Add(-time.Hour))}))
			return err
		}, connect.CodeInvalidArgument, "end"},
		{"timeline over 24h", func() error {
			_, err := rec(testRead).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "cam1", Start: ts(now.Add(-25 * time.Hour)), End: ts(now)}))
			return err
		}, connect.CodeInvalidArgument, "end"},
		{"timeline no start", func() error {
			_, err := rec(testRead).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "cam1", End: ts(now)}))
			return err
		}, connect.CodeInvalidArgument, "start"},
		{"timeline bad stream id", func() error {
			_, err := rec(testRead).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "a/b", Start: ts(now.Add(-time.Hour)), End: ts(now)}))
			return err
		}, connect.CodeInvalidArgument, "stream_id"},
		{"timeline unknown stream", func() error {
			_, err := rec(testRead).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{StreamId: "ghost", Start: ts(now.Add(-time.Hour)), End: ts(now)}))
			return err
		}, connect.CodeNotFound, ""},
		{"export nothing recorded", func() error {
			st, err := rec(testRead).ExportClip(ctx, connect.NewRequest(&understudyv1.ExportClipRequest{StreamId: "cam1", Start: ts(now.Add(-time.Hour)), End: ts(now)}))
			if err != nil {
				return err
			}
			for st.Receive() {
			}
			return st.Err()
		}, connect.CodeNotFound, ""},
		{"export over 24h", func() error {
			st, err := rec(testRead).ExportClip(ctx, connect.NewRequest(&understudyv1.ExportClipRequest{StreamId: "cam1", Start: ts(now.Add(-48 * time.Hour)), End: ts(now)}))
			if err != nil {
				return err
			}
			for st.Receive() {
			}
			return st.Err()
		}, connect.CodeInvalidArgument, "end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if connect.CodeOf(err) != c.code {
				t.Fatalf("got %v (%v), want %v", connect.CodeOf(err), err, c.code)
			}
			var ce *connect.Error
			if c.field != "" && (!errors.As(err, &ce) || !strings.HasPrefix(ce.Message(), c.field+":")) {
				t.Errorf("message %q does not name %s", ce.Message(), c.field)
			}
		})
	}
	// Rejected requests changed nothing: only cam1 exists, unchanged.
	list, _, err := n.catalog.List(0, "")
	if err != nil || len(list) != 1 || list[0].ID != "cam1" || list[0].URL != good.Url {
		t.Fatalf("catalog after rejected requests: %v %v", list, err)
	}

	// Plain HTTP endpoints share the roles.
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", 401}, {"/metrics", "bad", 401}, {"/metrics", testRead, 200},
		{"/debug/pprof/", testRead, 403}, {"/debug/pprof/", testAdmin, 200},
		{"/healthz", "", 200}, {"/readyz", "", 200},
		{"/v1/export?stream=cam1&start=x&end=y", "", 401},
		{"/v1/export?stream=cam1&start=x&end=y", testRead, 400},
		{"/v1/export?stream=a%2Fb&start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z", testRead, 400},
		{"/v1/export?stream=cam1&start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z", testRead, 400},
		{"/v1/export?stream=cam1&start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z", testRead, 404},
	} {
		resp, err := client(c.token).Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with %q: %d %s, want %d", c.path, c.token, resp.StatusCode, body, c.want)
		}
		if c.path == "/metrics" && c.want == 200 {
			for _, name := range []string{MetricStreamsAssigned, MetricStreamsRecording, MetricOpenGaps, MetricBytesWritten,
				MetricFramesWritten, MetricFramesDropped, MetricDiskUsed, MetricDiskFree, MetricCPUPercent, MetricEventsDropped,
				MetricQueueBytes, MetricQueueLimit, MetricVideoStalls} {
				if !bytes.Contains(body, []byte("\n"+name+" ")) {
					t.Errorf("/metrics lacks %s", name)
				}
			}
		}
	}
}

func TestAnonymousRead(t *testing.T) {
	_, srv := testNode(t, func(c *Config) { c.AnonymousRead = true })
	ctx := context.Background()
	sc := understudyv1connect.NewStreamServiceClient(client(""), srv.URL)
	if _, err := sc.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{})); err != nil {
		t.Fatalf("anonymous read: %v", err)
	}
	_, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{Stream: &understudyv1.Stream{Id: "a", Url: "rtsp://h/x"}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("anonymous write: %v, want permission_denied", err)
	}
}

func TestClusterAndPlacement(t *testing.T) {
	n, srv := testNode(t, func(c *Config) { c.Domain = "zone=a/rack=r1/host=h1" })
	ctx := context.Background()
	if _, err := n.catalog.Create(catalogStream("s1", true)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.catalog.Create(catalogStream("s2", false)); err != nil {
		t.Fatal(err)
	}
	// The supervisor places the streams (and tries to record s1).
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); n.supervise(sctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cc := understudyv1connect.NewClusterServiceClient(client(testRead), srv.URL)
	var pl *connect.Response[understudyv1.GetPlacementResponse]
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		var err error
		if pl, err = cc.GetPlacement(ctx, connect.NewRequest(&understudyv1.GetPlacementRequest{})); err != nil {
			t.Fatal(err)
		}
		if len(pl.Msg.Assignments) == 2 && len(pl.Msg.Assignments[0].NodeIds) > 0 {
			break
		}
	}
	if len(pl.Msg.Assignments) != 2 || strings.Join(pl.Msg.Assignments[0].NodeIds, ",") != "n1" || len(pl.Msg.Assignments[1].NodeIds) != 0 {
		t.Fatalf("GetPlacement: %v", pl.Msg)
	}
	nodes, err := cc.ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Msg.Nodes) != 1 || nodes.Msg.Nodes[0].Id != "n1" || nodes.Msg.Nodes[0].Domain != "zone=a/rack=r1/host=h1" ||
		nodes.Msg.Nodes[0].State != understudyv1.NodeState_NODE_STATE_ACTIVE || nodes.Msg.Nodes[0].DiskFreeBytes == 0 ||
		nodes.Msg.Nodes[0].HomeStreams != 1 || nodes.Msg.Nodes[0].Capacity != 1 {
		t.Fatalf("ListNodes: %v", nodes.Msg)
	}
}

func TestEventBusDropsForSlowSubscribers(t *testing.T) {
	b := NewEventBus()
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	for i := 0; i < 10; i++ {
		b.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_GAP_OPENED, Stream: "s"})
	}
	if slow.Dropped() != 8 || fast.Dropped() != 0 || b.Dropped() != 8 {
		t.Fatalf("dropped slow %d fast %d total %d, want 8 0 8", slow.Dropped(), fast.Dropped(), b.Dropped())
	}
	if len(fast.C) != 10 || len(slow.C) != 2 {
		t.Fatalf("queued fast %d slow %d", len(fast.C), len(slow.C))
	}
	slow.Close()
	slow.Close()
	b.Publish(Event{}) // no panic on a closed subscription
}

// FuzzCreateStreamRequest sends arbitrary CreateStream requests through the
// real handler: valid streams are stored, everything else is answered with
// a clean error, and nothing panics.
func FuzzCreateStreamRequest(f *testing.F) {
	f.Add("cam1", "rtsp://10.0.0.1/x", "u", "p", uint32(2), int64(3600), "site", "a", true, []byte(nil))
	f.Add("../x", "rtsp://u:p@h/x", "", "", uint32(9), int64(-1), "BAD KEY", "", false, []byte(`{"stream":{"id":1}}`))
	f.Add("", "", "", "", uint32(0), int64(0), "", "", false, []byte(`{"stream":{"archiveRetention":"-99999999999s"}}`))
	n, srv := testNode(f, nil)
	_ = n
	hc := client(testAdmin)
	f.Fuzz(func(t *testing.T, id, url, user, pass string, replicas uint32, retention int64, lk, lv string, enabled bool, raw []byte) {
		var body []byte
		if raw != nil {
			body = raw
		} else {
			req := &understudyv1.CreateStreamRequest{Stream: &understudyv1.Stream{
				Id: id, Url: url, Credentials: &understudyv1.Credentials{Username: user, Password: pass},
				Replicas: replicas, ArchiveRetention: &durationpb.Duration{Seconds: retention},
				Labels: map[string]string{lk: lv}, Enabled: enabled,
			}}
			var err error
			if body, err = protojson.Marshal(req); err != nil {
				return // not valid UTF-8: protojson cannot encode it
			}
		}
		r, _ := http.NewRequest("POST", srv.URL+understudyv1connect.StreamServiceCreateStreamProcedure, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200, 400, 409:
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, out)
		}
		if resp.StatusCode == 200 {
			var got understudyv1.CreateStreamResponse
			if err := protojson.Unmarshal(out, &got); err != nil {
				t.Fatalf("response does not decode: %v: %s", err, out)
			}
			if got.GetStream().GetCredentials() != nil {
				t.Fatalf("response returns credentials: %s", out)
			}
		}
	})
}

func catalogStream(id string, enabled bool) catalog.Stream {
	return catalog.Stream{ID: id, URL: "rtsp://127.0.0.1:1/" + id, Enabled: enabled}
}
