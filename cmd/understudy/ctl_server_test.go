package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// ctlFake is a small in-memory stand-in for the API server, only to check
// the requests ctl builds and how it prints the answers. It checks the
// bearer token ("good" passes, anything else is permission_denied) and
// records what it saw.
type ctlFake struct {
	understudyv1connect.UnimplementedRecordingServiceHandler // ListSegments

	mu       sync.Mutex
	streams  map[string]*understudyv1.Stream
	creates  []*understudyv1.CreateStreamRequest
	updates  []*understudyv1.UpdateStreamRequest
	timeline *understudyv1.GetTimelineRequest
	auth     []string // Authorization headers, in call order
	protos   []int    // HTTP major versions, in call order
	lists    int      // ListStreams calls
	nodeUpd  []*understudyv1.UpdateNodeRequest
}

var ctlT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (f *ctlFake) check(h http.Header) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := h.Get("Authorization")
	f.auth = append(f.auth, a)
	if a != "Bearer good" {
		return connect.NewError(connect.CodePermissionDenied, errors.New("token not allowed"))
	}
	return nil
}

func (f *ctlFake) CreateStream(_ context.Context, r *connect.Request[understudyv1.CreateStreamRequest]) (*connect.Response[understudyv1.CreateStreamResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, proto.Clone(r.Msg).(*understudyv1.CreateStreamRequest))
	s := proto.Clone(r.Msg.GetStream()).(*understudyv1.Stream)
	if u, err := url.Parse(s.GetUrl()); s.GetId() == "" || err != nil || u.User != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("bad stream"))
	}
	if _, ok := f.streams[s.Id]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("stream "+s.Id+" exists"))
	}
	s.HasCredentials, s.Credentials = s.Credentials != nil, nil
	s.CreateTime, s.UpdateTime = timestamppb.New(ctlT0), timestamppb.New(ctlT0)
	f.streams[s.Id] = s
	return connect.NewResponse(&understudyv1.CreateStreamResponse{Stream: s}), nil
}

func (f *ctlFake) GetStream(_ context.Context, r *connect.Request[understudyv1.GetStreamRequest]) (*connect.Response[understudyv1.GetStreamResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.streams[r.Msg.GetId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no stream "+r.Msg.GetId()))
	}
	return connect.NewResponse(&understudyv1.GetStreamResponse{Stream: s}), nil
}

// ListStreams pages by 2 so that ctl must follow next_page_token.
func (f *ctlFake) ListStreams(_ context.Context, r *connect.Request[understudyv1.ListStreamsRequest]) (*connect.Response[understudyv1.ListStreamsResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var ids []string
	for id := range f.streams {
		if id > r.Msg.GetPageToken() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	res := &understudyv1.ListStreamsResponse{}
	for _, id := range ids {
		if len(res.Streams) == 2 {
			res.NextPageToken = res.Streams[1].Id
			break
		}
		res.Streams = append(res.Streams, f.streams[id])
	}
	return connect.NewResponse(res), nil
}

func (f *ctlFake) UpdateStream(_ context.Context, r *connect.Request[understudyv1.UpdateStreamRequest]) (*connect.Response[understudyv1.UpdateStreamResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, proto.Clone(r.Msg).(*understudyv1.UpdateStreamRequest))
	s, ok := f.streams[r.Msg.GetStream().GetId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no stream"))
	}
	in := r.Msg.GetStream()
	for _, p := range r.Msg.GetUpdateMask().GetPaths() {
		switch p {
		case "enabled":
			s.Enabled = in.GetEnabled()
		case "replicas":
			s.Replicas = in.GetReplicas()
		case "labels":
			s.Labels = in.GetLabels()
		case "credentials":
			s.HasCredentials = in.GetCredentials() != nil
		default:
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("mask path "+p))
		}
	}
	return connect.NewResponse(&understudyv1.UpdateStreamResponse{Stream: s}), nil
}

func (f *ctlFake) DeleteStream(_ context.Context, r *connect.Request[understudyv1.DeleteStreamRequest]) (*connect.Response[understudyv1.DeleteStreamResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.streams[r.Msg.GetId()]; !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no stream"))
	}
	delete(f.streams, r.Msg.GetId())
	return connect.NewResponse(&understudyv1.DeleteStreamResponse{}), nil
}

// GetTimeline tiles the requested range: 60 s recorded by a and b, 30 s
// source gap, the rest recorded by a.
func (f *ctlFake) GetTimeline(_ context.Context, r *connect.Request[understudyv1.GetTimelineRequest]) (*connect.Response[understudyv1.GetTimelineResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.timeline = proto.Clone(r.Msg).(*understudyv1.GetTimelineRequest)
	f.mu.Unlock()
	s, e := r.Msg.GetStart().AsTime(), r.Msg.GetEnd().AsTime()
	if e.Sub(s) < 2*time.Minute {
		return connect.NewResponse(&understudyv1.GetTimelineResponse{Gaps: []*understudyv1.Gap{
			{Start: r.Msg.GetStart(), End: r.Msg.GetEnd(), Kind: understudyv1.GapKind_GAP_KIND_SYSTEM}}}), nil
	}
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(s.Add(d)) }
	return connect.NewResponse(&understudyv1.GetTimelineResponse{
		Coverage: []*understudyv1.CoverageInterval{
			{Start: ts(0), End: ts(time.Minute), NodeIds: []string{"a", "b"}, Origin: understudyv1.Origin_ORIGIN_LIVE},
			{Start: ts(90 * time.Second), End: r.Msg.GetEnd(), NodeIds: []string{"a"}, Origin: understudyv1.Origin_ORIGIN_LIVE},
		},
		Gaps: []*understudyv1.Gap{{Start: ts(time.Minute), End: ts(90 * time.Second), Kind: understudyv1.GapKind_GAP_KIND_SOURCE}},
	}), nil
}

// ctlClipChunks is what ExportClip sends for stream "door"; for stream
// "broken" it sends the first chunk and then fails.
var ctlClipChunks = [][]byte{bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte("b"), 2000), []byte("end")}

func (f *ctlFake) ExportClip(_ context.Context, r *connect.Request[understudyv1.ExportClipRequest], st *connect.ServerStream[understudyv1.ExportClipResponse]) error {
	if err := f.check(r.Header()); err != nil {
		return err
	}
	if r.Msg.GetStreamId() != "door" && r.Msg.GetStreamId() != "broken" {
		return connect.NewError(connect.CodeNotFound, errors.New("nothing recorded"))
	}
	for i, c := range ctlClipChunks {
		m := &understudyv1.ExportClipResponse{Chunk: c}
		if i == 0 {
			m.ContentType = "video/mp4"
			m.Start = timestamppb.New(r.Msg.GetStart().AsTime().Add(-1500 * time.Millisecond))
			m.End = r.Msg.GetEnd()
		} else if r.Msg.GetStreamId() == "broken" {
			return connect.NewError(connect.CodeDataLoss, errors.New("segment failed its checksum"))
		}
		if err := st.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *ctlFake) ListNodes(_ context.Context, r *connect.Request[understudyv1.ListNodesRequest]) (*connect.Response[understudyv1.ListNodesResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&understudyv1.ListNodesResponse{Nodes: []*understudyv1.Node{
		{Id: "a", State: understudyv1.NodeState_NODE_STATE_ACTIVE, ApiAddress: "127.0.0.1:1", Domain: "zone=a"},
		{Id: "b", State: understudyv1.NodeState_NODE_STATE_SUSPECT, ApiAddress: "127.0.0.1:2", Domain: "zone=b"},
	}}), nil
}

func (f *ctlFake) UpdateNode(_ context.Context, r *connect.Request[understudyv1.UpdateNodeRequest]) (*connect.Response[understudyv1.UpdateNodeResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.nodeUpd = append(f.nodeUpd, r.Msg)
	f.mu.Unlock()
	return connect.NewResponse(&understudyv1.UpdateNodeResponse{Node: &understudyv1.Node{
		Id: r.Msg.NodeId, State: r.Msg.State, Capacity: float64(max(r.Msg.Capacity, 1))}}), nil
}

func (f *ctlFake) GetPlacement(_ context.Context, r *connect.Request[understudyv1.GetPlacementRequest]) (*connect.Response[understudyv1.GetPlacementResponse], error) {
	if err := f.check(r.Header()); err != nil {
		return nil, err
	}
	all := []*understudyv1.Assignment{{StreamId: "door", NodeIds: []string{"a", "b"}, Replicas: 2}, {StreamId: "yard", NodeIds: []string{"b"}, Replicas: 2}}
	if id := r.Msg.GetStreamId(); id != "" {
		for _, a := range all {
			if a.StreamId == id {
				return connect.NewResponse(&understudyv1.GetPlacementResponse{Assignments: []*understudyv1.Assignment{a}}), nil
			}
		}
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no stream "+id))
	}
	return connect.NewResponse(&understudyv1.GetPlacementResponse{Assignments: all}), nil
}

// WatchEvents sends two events, then waits for the client to go away.
func (f *ctlFake) WatchEvents(ctx context.Context, r *connect.Request[understudyv1.WatchEventsRequest], st *connect.ServerStream[understudyv1.WatchEventsResponse]) error {
	if err := f.check(r.Header()); err != nil {
		return err
	}
	for i, k := range []understudyv1.EventKind{understudyv1.EventKind_EVENT_KIND_NODE_JOINED, understudyv1.EventKind_EVENT_KIND_GAP_OPENED} {
		if len(r.Msg.GetKinds()) > 0 && !slices.Contains(r.Msg.GetKinds(), k) {
			continue
		}
		if err := st.Send(&understudyv1.WatchEventsResponse{Event: &understudyv1.Event{
			Time: timestamppb.New(ctlT0.Add(time.Duration(i) * time.Second)), Kind: k, NodeId: "b",
			Details: map[string]string{"n": string(rune('0' + i))}}}); err != nil {
			return err
		}
	}
	if slices.Contains(r.Msg.GetStreamIds(), "server-stops") {
		return nil // as a node shutting down does
	}
	<-ctx.Done()
	return nil
}

// ctlServe starts the fake over HTTP/1.1 and h2c.
func ctlServe(t *testing.T) (*ctlFake, string) {
	t.Helper()
	f := &ctlFake{streams: map[string]*understudyv1.Stream{}}
	mux := http.NewServeMux()
	mux.Handle(understudyv1connect.NewStreamServiceHandler(f))
	mux.Handle(understudyv1connect.NewRecordingServiceHandler(f))
	mux.Handle(understudyv1connect.NewClusterServiceHandler(f))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.protos = append(f.protos, r.ProtoMajor)
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// ctlCall runs ctl against server with the given token and arguments.
func ctlCall(t *testing.T, server, token string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--server", server, "--token", token}, args...)
	code = ctlRun(context.Background(), all, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtlStreams(t *testing.T) {
	f, srv := ctlServe(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ctlCall(t, srv, "good", "streams", "add", "--id", "door", "--url", "rtsp://cam1.lan:554/main",
		"--replicas", "3", "--retention", "30d", "--label", "site=home", "--label", "floor=0",
		"--username", "admin", "--password-file", pwFile)
	if code != 0 {
		t.Fatalf("streams add: exit %d: %s", code, errs)
	}
	if strings.Contains(out+errs, "s3cret") || !strings.Contains(out, "credentials:        yes") || !strings.Contains(out, "30d") {
		t.Errorf("streams add output:\n%s", out)
	}
	f.mu.Lock()
	got := f.creates[0].GetStream()
	f.mu.Unlock()
	if got.GetUrl() != "rtsp://cam1.lan:554/main" || got.GetCredentials().GetUsername() != "admin" ||
		got.GetCredentials().GetPassword() != "s3cret-pw" || got.GetReplicas() != 3 ||
		got.GetArchiveRetention().AsDuration() != 30*24*time.Hour || !got.GetEnabled() ||
		got.GetLabels()["site"] != "home" || got.GetLabels()["floor"] != "0" {
		t.Errorf("CreateStream request: %v", got)
	}

	// Credentials in the URL are refused before any call, without echoing them.
	code, out, errs = ctlCall(t, srv, "good", "streams", "add", "--id", "x", "--url", "rtsp://admin:hunter2@cam/")
	if code != 2 || strings.Contains(out+errs, "hunter2") || !strings.Contains(errs, "--url") {
		t.Errorf("URL with credentials: exit %d, stderr %q", code, errs)
	}
	for _, id := range []string{"yard", "attic"} {
		if code, _, errs := ctlCall(t, srv, "good", "streams", "add", "--id", id, "--url", "rtsps://"+id+".lan/s", "--disabled",
			"--password", "pw-on-cmdline", "--username", "u"); code != 0 {
			t.Fatalf("add %s: %s", id, errs)
		}
	}
	if f.creates[1].GetStream().GetEnabled() || f.creates[1].GetStream().GetCredentials().GetPassword() != "pw-on-cmdline" {
		t.Errorf("--disabled / --password: %v", f.creates[1])
	}
	code, _, errs = ctlCall(t, srv, "good", "streams", "add", "--id", "door", "--url", "rtsp://cam1.lan/")
	if code != 1 || !strings.Contains(errs, "ctl: already_exists: stream door exists") {
		t.Errorf("duplicate add: exit %d, stderr %q", code, errs)
	}

	// list follows the pages (the fake pages by 2).
	code, out, errs = ctlCall(t, srv, "good", "streams", "list")
	if code != 0 || f.lists != 2 {
		t.Fatalf("streams list: exit %d, %d calls: %s", code, f.lists, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "attic ") ||
		!strings.HasPrefix(lines[2], "door ") || !strings.Contains(lines[2], "floor=0,site=home") || !strings.HasPrefix(lines[3], "yard ") {
		t.Errorf("streams list:\n%s", out)
	}
	code, out, _ = ctlCall(t, srv, "good", "--json", "streams", "list")
	var list struct {
		Streams []map[string]any `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Streams) != 3 {
		t.Fatalf("streams list --json: exit %d, %v:\n%s", code, err, out)
	}
	door := list.Streams[1]
	if door["id"] != "door" || door["has_credentials"] != true || door["archive_retention"] != "2592000s" || door["credentials"] != nil {
		t.Errorf("door as JSON: %v", door)
	}

	code, out, _ = ctlCall(t, srv, "good", "streams", "get", "--json", "door", "--timeout", "5s")
	if code != 0 || !strings.Contains(out, `"id": "door",`) {
		t.Errorf("streams get --json: exit %d:\n%s", code, out)
	}
	code, out, _ = ctlCall(t, srv, "good", "streams", "get", "door")
	if code != 0 || !strings.Contains(out, "url:                rtsp://cam1.lan:554/main") || !strings.Contains(out, "replicas:           3") {
		t.Errorf("streams get: exit %d:\n%s", code, out)
	}
	code, _, errs = ctlCall(t, srv, "good", "streams", "get", "nope")
	if code != 1 || !strings.Contains(errs, "ctl: not_found: no stream nope") {
		t.Errorf("get unknown: exit %d, %q", code, errs)
	}

	// update builds the mask from the flags given; --json after the id.
	code, out, errs = ctlCall(t, srv, "good", "streams", "update", "door", "--replicas", "2", "--label", "site=office", "--json")
	if code != 0 {
		t.Fatalf("update: exit %d: %s", code, errs)
	}
	if u := f.updates[0]; !slices.Equal(u.GetUpdateMask().GetPaths(), []string{"replicas", "labels"}) || u.GetStream().GetReplicas() != 2 {
		t.Errorf("UpdateStream request: %v", u)
	}
	if !strings.Contains(out, `"replicas": 2,`) {
		t.Errorf("update --json:\n%s", out)
	}
	if code, _, errs := ctlCall(t, srv, "good", "streams", "update", "--json", "door", "--clear-labels", "--", "door"); code != 2 || !strings.Contains(errs, "want one stream id") {
		t.Errorf("two ids: exit %d, %q", code, errs)
	}
	if code, _, _ := ctlCall(t, srv, "good", "streams", "disable", "door"); code != 0 || f.streams["door"].Enabled {
		t.Errorf("disable: exit %d, enabled %v", code, f.streams["door"].Enabled)
	}
	if u := f.updates[1]; !slices.Equal(u.GetUpdateMask().GetPaths(), []string{"enabled"}) {
		t.Errorf("disable mask: %v", u.GetUpdateMask())
	}
	if code, _, errs := ctlCall(t, srv, "good", "streams", "update", "door"); code != 2 || !strings.Contains(errs, "nothing to change") {
		t.Errorf("empty update: exit %d, %q", code, errs)
	}
	code, out, _ = ctlCall(t, srv, "good", "streams", "rm", "door")
	if code != 0 || !strings.Contains(out, "deleted stream door") || f.streams["door"] != nil {
		t.Errorf("rm: exit %d, %q", code, out)
	}
}

func TestCtlTimelineAndExport(t *testing.T) {
	f, srv := ctlServe(t)
	code, out, errs := ctlCall(t, srv, "good", "timeline", "--stream", "door", "--from", "2026-03-01T13:00:00+01:00",
		"--to", "2026-03-01T12:03:00Z", "--node", "a", "--class", "archive")
	if code != 0 {
		t.Fatalf("timeline: exit %d: %s", code, errs)
	}
	req := f.timeline
	if req.GetStreamId() != "door" || !req.GetStart().AsTime().Equal(ctlT0) || !req.GetEnd().AsTime().Equal(ctlT0.Add(3*time.Minute)) ||
		req.GetNodeId() != "a" || req.GetClass() != understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE {
		t.Errorf("GetTimeline request: %v", req)
	}
	ctlGolden(t, "ctl_timeline.golden", []byte(out))

	code, out, _ = ctlCall(t, srv, "good", "timeline", "--json", "--stream", "door", "--from", "now-5m", "--to", "now-4m")
	var tl map[string]any
	if err := json.Unmarshal([]byte(out), &tl); code != 0 || err != nil {
		t.Fatalf("timeline --json: exit %d, %v:\n%s", code, err, out)
	}
	if cov, ok := tl["coverage"].([]any); !ok || len(cov) != 0 {
		t.Errorf("timeline --json without coverage: %v", tl)
	}
	if gaps := tl["gaps"].([]any); gaps[0].(map[string]any)["kind"] != "GAP_KIND_SYSTEM" {
		t.Errorf("gaps: %v", gaps)
	}
	if d := f.timeline.GetEnd().AsTime().Sub(f.timeline.GetStart().AsTime()); d != time.Minute {
		t.Errorf("now-5m .. now-4m sent as a range of %v", d)
	}

	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	code, out, errs = ctlCall(t, srv, "good", "export", "--stream", "door", "--from", "2026-03-01T12:00:10Z", "--to", "2026-03-01T12:00:20Z", "-o", clip)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(clip)
	if err != nil || !bytes.Equal(b, bytes.Join(ctlClipChunks, nil)) {
		t.Errorf("clip file: %d bytes, %v", len(b), err)
	}
	if want := "wrote 3003 bytes (video/mp4) to " + clip + "\nclip 2026-03-01T12:00:08.500Z .. 2026-03-01T12:00:20.000Z (11.5s)\n"; out != want {
		t.Errorf("export output %q, want %q", out, want)
	}
	// A failure mid-stream leaves neither the file nor a temporary one.
	bad := filepath.Join(dir, "bad.mp4")
	code, _, errs = ctlCall(t, srv, "good", "export", "--stream", "broken", "--from", "now-1m", "--to", "now", "-o", bad)
	if code != 1 || !strings.Contains(errs, "ctl: data_loss: segment failed its checksum") {
		t.Errorf("broken export: exit %d, %q", code, errs)
	}
	code, _, errs = ctlCall(t, srv, "good", "export", "--stream", "nothing", "--from", "now-1m", "--to", "now", "-o", bad)
	if code != 1 || !strings.Contains(errs, "not_found") {
		t.Errorf("export of nothing: exit %d, %q", code, errs)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "clip.mp4" {
		t.Errorf("files after the failed exports: %v", ents)
	}
}

func TestCtlClusterCommands(t *testing.T) {
	_, srv := ctlServe(t)
	code, out, _ := ctlCall(t, srv, "good", "nodes")
	if code != 0 || !strings.Contains(out, "suspect") || !strings.Contains(out, "127.0.0.1:2") {
		t.Errorf("nodes: exit %d:\n%s", code, out)
	}
	code, out, _ = ctlCall(t, srv, "good", "placement", "--stream", "yard")
	if code != 0 || !strings.Contains(out, "under-replicated: 1 of 2") || strings.Contains(out, "door") {
		t.Errorf("placement: exit %d:\n%s", code, out)
	}
	code, out, _ = ctlCall(t, srv, "good", "placement", "--json")
	if code != 0 || !strings.Contains(out, `"node_ids"`) || !strings.Contains(out, `"stream_id"`) {
		t.Errorf("placement --json: exit %d:\n%s", code, out)
	}

	// events follows until the context ends, then exits 0.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &ctlLineWriter{want: 2, done: make(chan struct{})}
	res := make(chan int, 1)
	go func() {
		res <- ctlRun(ctx, []string{"--server", srv, "--token", "good", "events"}, w, &bytes.Buffer{})
	}()
	select {
	case <-w.done:
	case code := <-res:
		t.Fatalf("events ended early with %d: %q", code, w.String())
	case <-time.After(10 * time.Second):
		t.Fatal("no events within 10 s")
	}
	cancel()
	if code := <-res; code != 0 {
		t.Errorf("events after interrupt: exit %d", code)
	}
	if got, want := w.String(), "2026-03-01T12:00:00.000Z node_joined node=b n=0\n2026-03-01T12:00:01.000Z gap_opened node=b n=1\n"; got != want {
		t.Errorf("events output %q, want %q", got, want)
	}
}

// TestCtlEventsServerStops: `ctl events` follows forever; when the server
// ends the stream (a node shutting down) it says so and exits 1, so a
// script watching events notices.
func TestCtlEventsServerStops(t *testing.T) {
	_, srv := ctlServe(t)
	code, stdout, stderr := ctlCall(t, srv, "good", "events", "--stream", "server-stops")
	if code != 1 || !strings.Contains(stderr, "server ended the event stream") || !strings.Contains(stdout, "node_joined") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// ctlLineWriter closes done once it has seen want lines.
type ctlLineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want int
	done chan struct{}
}

func (w *ctlLineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Count(w.buf.Bytes(), []byte("\n")) == w.want {
		close(w.done)
	}
	return len(p), nil
}

func (w *ctlLineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestCtlAuthAndTransport(t *testing.T) {
	f, srv := ctlServe(t)
	code, out, errs := ctlCall(t, srv, "wrong-token", "nodes")
	if code != 1 || out != "" || errs != "ctl: permission_denied: token not allowed\n" {
		t.Errorf("bad token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if strings.Contains(errs, "wrong-token") {
		t.Error("the token appears in the output")
	}
	// Streaming calls carry the token too.
	code, _, errs = ctlCall(t, srv, "wrong-token", "export", "--stream", "door", "--from", "now-1m", "--to", "now", "-o", filepath.Join(t.TempDir(), "x"))
	if code != 1 || !strings.Contains(errs, "permission_denied") {
		t.Errorf("export with a bad token: exit %d, %q", code, errs)
	}

	// Token from a file, and from the environment; server from the environment.
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte("good\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNDERSTUDY_SERVER", strings.TrimPrefix(srv, "http://"))
	t.Setenv("UNDERSTUDY_TOKEN", "good")
	var o, e bytes.Buffer
	if code := ctlRun(context.Background(), []string{"nodes"}, &o, &e); code != 0 {
		t.Errorf("env server and token: exit %d: %s", code, e.String())
	}
	t.Setenv("UNDERSTUDY_TOKEN", "")
	if code := ctlRun(context.Background(), []string{"nodes", "--token-file", tf, "--http1"}, &o, &e); code != 0 {
		t.Errorf("--token-file: exit %d: %s", code, e.String())
	}
	f.mu.Lock()
	auth, protos := f.auth, f.protos
	f.mu.Unlock()
	wantAuth := []string{"Bearer wrong-token", "Bearer wrong-token", "Bearer good", "Bearer good"}
	if !slices.Equal(auth, wantAuth) {
		t.Errorf("Authorization headers %q, want %q", auth, wantAuth)
	}
	if want := []int{2, 2, 2, 1}; !slices.Equal(protos, want) {
		t.Errorf("HTTP versions %v, want %v (h2c by default, --http1 on request)", protos, want)
	}
}

func TestCtlUsageErrors(t *testing.T) {
	f, srv := ctlServe(t)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--bogus", "nodes"}, "bogus"},
		{[]string{"streams"}, "want a subcommand"},
		{[]string{"streams", "add", "--url", "rtsp://cam/"}, "--url are required"},
		{[]string{"streams", "add", "--id", "x", "--url", "http://cam/"}, "--url: scheme"},
		{[]string{"streams", "add", "--id", "x", "--url", "rtsp://cam/", "--retention", "30x"}, "-retention"},
		{[]string{"streams", "add", "--id", "x", "--url", "rtsp://cam/", "--retention", "0s"}, "--retention: must be positive"},
		{[]string{"streams", "add", "--id", "x", "--url", "rtsp://cam/", "--label", "nolabel"}, "-label"},
		{[]string{"streams", "add", "--id", "x", "--url", "rtsp://cam/", "--password", "p"}, "need --username"},
		{[]string{"streams", "get"}, "want a stream id"},
		{[]string{"streams", "rm", "a", "b"}, "want one stream id"},
		{[]string{"timeline", "--stream", "door", "--from", "now"}, "--from and --to are required"},
		{[]string{"timeline", "--stream", "door", "--from", "now", "--to", "now-1m"}, "--to must be after --from"},
		{[]string{"timeline", "--stream", "door", "--from", "yesterday", "--to", "now"}, "-from"},
		{[]string{"timeline", "--stream", "door", "--from", "now-1m", "--to", "now", "--class", "hot"}, "--class"},
		{[]string{"export", "--stream", "door", "--from", "now-1m", "--to", "now"}, "-o is required"},
		{[]string{"events", "--kind", "explosion"}, "unknown event kind"},
		{[]string{"nodes", "extra"}, "unknown subcommand \"extra\""},
		{[]string{"--server", "ftp://x:1", "nodes"}, "--server"},
		{[]string{"--ca-file", "/nonexistent", "nodes"}, "need an https:// server"},
		{[]string{"--token-file", "/nonexistent/token", "nodes"}, "--token-file"},
	}
	for _, c := range cases {
		var o, e bytes.Buffer
		args := c.args
		if len(args) > 0 && args[0] != "--server" {
			args = append([]string{"--server", srv, "--token", "good"}, args...)
		}
		code := ctlRun(context.Background(), args, &o, &e)
		if code != 2 || !strings.Contains(e.String(), c.want) {
			t.Errorf("ctl %q: exit %d, stderr %q; want 2 and %q", c.args, code, e.String(), c.want)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auth) != 0 {
		t.Errorf("bad usage reached the server %d times", len(f.auth))
	}
}

func TestCtlTLSAndHints(t *testing.T) {
	f := &ctlFake{streams: map[string]*understudyv1.Stream{}}
	mux := http.NewServeMux()
	mux.Handle(understudyv1connect.NewClusterServiceHandler(f))
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := ctlCall(t, tlsSrv.URL, "good", "nodes"); code != 1 || !strings.Contains(errs, "certificate") {
		t.Errorf("untrusted certificate: exit %d, %q", code, errs)
	}
	if code, out, errs := ctlCall(t, tlsSrv.URL, "good", "--ca-file", ca, "nodes"); code != 0 || !strings.Contains(out, "suspect") {
		t.Errorf("--ca-file: exit %d, %q", code, errs)
	}
	if code, _, errs := ctlCall(t, tlsSrv.URL, "good", "--insecure-skip-verify", "nodes"); code != 0 {
		t.Errorf("--insecure-skip-verify: exit %d, %q", code, errs)
	}
	if code, _, errs := ctlCall(t, tlsSrv.URL, "good", "--ca-file", os.Args[0], "nodes"); code != 2 || !strings.Contains(errs, "no PEM certificate") {
		t.Errorf("--ca-file without PEM: exit %d, %q", code, errs)
	}

	// A plain HTTP/1.1 server: h2c fails with a hint, --http1 works.
	plain := httptest.NewServer(mux)
	defer plain.Close()
	code, _, errs := ctlCall(t, plain.URL, "good", "nodes")
	if code != 1 || !strings.Contains(errs, "try --http1") {
		t.Errorf("h2c against HTTP/1.1: exit %d, %q", code, errs)
	}
	if code, _, errs := ctlCall(t, plain.URL, "good", "--http1", "nodes"); code != 0 {
		t.Errorf("--http1: exit %d, %q", code, errs)
	}
}

func TestCtlEventsJSONAndHelp(t *testing.T) {
	_, srv := ctlServe(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &ctlLineWriter{want: 1, done: make(chan struct{})}
	res := make(chan int, 1)
	go func() {
		res <- ctlRun(ctx, []string{"--server", srv, "--token", "good", "events", "--json", "--kind", "gap_opened"}, w, &bytes.Buffer{})
	}()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	cancel()
	if code := <-res; code != 0 {
		t.Errorf("events --json: exit %d", code)
	}
	want := `{"event":{"time":"2026-03-01T12:00:01Z","kind":"EVENT_KIND_GAP_OPENED","stream_id":"","node_id":"b","message":"","details":{"n":"1"}}}` + "\n"
	if got := w.String(); got != want {
		t.Errorf("events --json line %q, want %q", got, want)
	}
	for _, args := range [][]string{{"-h"}, {"timeline", "-h"}, {"--token", "topsecret", "streams", "add", "-h"}} {
		var o, e bytes.Buffer
		if code := ctlRun(context.Background(), args, &o, &e); code != 0 || !strings.Contains(o.String(), "-server") {
			t.Errorf("ctl %q: exit %d, stdout %q", args, code, o.String())
		}
		if strings.Contains(o.String()+e.String(), "topsecret") {
			t.Errorf("ctl %q prints the token", args)
		}
	}
}

// TestCtlNodesUpdate: drain, activate and update send the settings asked
// for to the node named; bad use says what is wrong and sends nothing.
func TestCtlNodesUpdate(t *testing.T) {
	f, srv := ctlServe(t)
	for _, tc := range []struct {
		args  []string
		state understudyv1.NodeState
		capa  uint32
	}{
		{[]string{"nodes", "drain", "n2"}, understudyv1.NodeState_NODE_STATE_DRAINING, 0},
		{[]string{"nodes", "activate", "n2"}, understudyv1.NodeState_NODE_STATE_ACTIVE, 0},
		{[]string{"nodes", "update", "n2", "--capacity", "3"}, understudyv1.NodeState_NODE_STATE_UNSPECIFIED, 3},
		{[]string{"nodes", "update", "--state", "draining", "n2", "--capacity", "5"}, understudyv1.NodeState_NODE_STATE_DRAINING, 5},
	} {
		code, out, errs := ctlCall(t, srv, "good", tc.args...)
		f.mu.Lock()
		got := f.nodeUpd[len(f.nodeUpd)-1]
		f.mu.Unlock()
		if code != 0 || got.NodeId != "n2" || got.State != tc.state || got.Capacity != tc.capa || !strings.Contains(out, "n2") {
			t.Errorf("%v: exit %d, sent %v, printed %q %q", tc.args, code, got, out, errs)
		}
	}
	// forget sends the forget flag alone.
	code, out, errs := ctlCall(t, srv, "good", "nodes", "forget", "n3")
	f.mu.Lock()
	got := f.nodeUpd[len(f.nodeUpd)-1]
	f.mu.Unlock()
	if code != 0 || got.NodeId != "n3" || !got.Forget || got.State != understudyv1.NodeState_NODE_STATE_UNSPECIFIED || got.Capacity != 0 || !strings.Contains(out, "n3 forgotten") {
		t.Errorf("nodes forget n3: exit %d, sent %v, printed %q %q", code, got, out, errs)
	}
	sent := len(f.nodeUpd)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nodes", "drain"}, "want a node id"},
		{[]string{"nodes", "forget"}, "want a node id"},
		{[]string{"nodes", "update", "n2"}, "nothing to change"},
		{[]string{"nodes", "update", "n2", "--state", "saturated"}, "want active or draining"},
		{[]string{"nodes", "update", "n2", "--capacity", "2000000"}, "1 to 1048576"},
		{[]string{"nodes", "bogus"}, "unknown subcommand"},
	} {
		code, _, errs := ctlCall(t, srv, "good", tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if len(f.nodeUpd) != sent {
		t.Errorf("bad use sent %d UpdateNode calls", len(f.nodeUpd)-sent)
	}
	if code, out, _ := ctlCall(t, srv, "good", "nodes", "-h"); code != 0 || !strings.Contains(out, "drain ID") {
		t.Errorf("nodes -h: exit %d, %q", code, out)
	}
}
