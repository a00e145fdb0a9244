package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/engine"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

var ctlUpdateGolden = flag.Bool("update", false, "rewrite the golden files of testdata/")

func TestParseCtlTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	good := []struct {
		in   string
		want time.Time
	}{
		{"2026-03-01T12:00:00+01:00", time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)},
		{"2026-03-01T12:00:00.250Z", time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC)},
		{"2026-03-01T12:00:00-05:30", time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)},
		{"now", now},
		{" now ", now},
		{"now-90s", now.Add(-90 * time.Second)},
		{"now-5m", now.Add(-5 * time.Minute)},
		{"now-2h", now.Add(-2 * time.Hour)},
		{"now-1d", now.Add(-24 * time.Hour)},
		{"now-1d12h", now.Add(-36 * time.Hour)},
		{"now-1h30m", now.Add(-90 * time.Minute)},
		{"now+10m", now.Add(10 * time.Minute)},
	}
	for _, c := range good {
		got, err := parseCtlTime(c.in, now)
		if err != nil {
			t.Errorf("parseCtlTime(%q): %v", c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("parseCtlTime(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	bad := []string{"", "yesterday", "nowish", "now-", "now-5", "now-5x", "now--5m", "now-+5m", "now-1.5d",
		"now5m", "2026-03-01 12:00:00", "2026-03-01T12:00:00", "2026-13-01T12:00:00Z", "1700000000"}
	for _, in := range bad {
		if got, err := parseCtlTime(in, now); err == nil {
			t.Errorf("parseCtlTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "45s": 45 * time.Second,
		"1h30m": 90 * time.Minute, "1d12h": 36 * time.Hour, "0s": 0, "1500ms": 1500 * time.Millisecond,
	}
	for in, want := range good {
		got, err := engine.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("engine.ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "30", "1w", "xd", "-5m", "+5m", "1d-1h", "1.5d", "30 d", "999999d", "5 m"} {
		if got, err := engine.ParseDuration(in); err == nil {
			t.Errorf("engine.ParseDuration(%q) = %v, want an error", in, got)
		}
	}
	for _, d := range []time.Duration{30 * 24 * time.Hour, 12 * time.Hour, 90 * time.Minute, 36 * time.Hour} {
		got, err := engine.ParseDuration(fmtCtlRetention(d))
		if err != nil || got != d {
			t.Errorf("round trip of %v via %q: %v, %v", d, fmtCtlRetention(d), got, err)
		}
	}
}

func TestNormaliseCtlServer(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:8080":        "http://127.0.0.1:8080",
		"localhost:8080":        "http://localhost:8080",
		"[::1]:8080":            "http://[::1]:8080",
		"http://node1:8080":     "http://node1:8080",
		"http://node1:8080/":    "http://node1:8080",
		"https://node1:8443":    "https://node1:8443",
		"https://node1/api/":    "https://node1/api",
		" http://node1:8080 ":   "http://node1:8080",
		"http://NODE1.lan:8080": "http://NODE1.lan:8080",
	}
	for in, want := range good {
		got, err := normaliseCtlServer(in)
		if err != nil || got != want {
			t.Errorf("normaliseCtlServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://node1:21", "http://", "http://:8080", "http://u:p@node1:8080",
		"node1:99999", "node1:x", "http://node1:8080?a=b", "http://node1:8080#f", "rtsp://node1:554"} {
		if got, err := normaliseCtlServer(in); err == nil {
			t.Errorf("normaliseCtlServer(%q) = %q, want an error", in, got)
		}
	}
}

func TestCtlLabels(t *testing.T) {
	l := ctlLabels{}
	for _, s := range []string{"site=home", "purpose=door=front", "empty="} {
		if err := l.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if got, want := l.String(), "empty=,purpose=door=front,site=home"; got != want {
		t.Errorf("labels %q, want %q", got, want)
	}
	for _, s := range []string{"site=again", "novalue", "=x", " =x"} {
		if err := l.Set(s); err == nil {
			t.Errorf("Set(%q) accepted", s)
		}
	}
}

// ctlSample is fixed data for the output tests.
func ctlSample() (streams []*understudyv1.Stream, tl *understudyv1.GetTimelineResponse, nodes []*understudyv1.Node,
	as []*understudyv1.Assignment, ev *understudyv1.Event) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	streams = []*understudyv1.Stream{
		{Id: "door", Url: "rtsp://cam1.lan:554/main", HasCredentials: true, Replicas: 3,
			ArchiveRetention: durationpb.New(30 * 24 * time.Hour), Labels: map[string]string{"site": "home", "floor": "0"},
			Enabled: true, CreateTime: ts(0), UpdateTime: ts(time.Hour),
			Status: &understudyv1.StreamStatus{State: understudyv1.StreamState_STREAM_STATE_UNDER_REPLICATED,
				Reason: "2 of 3 recorders receive media; c: camera_unreachable: connection refused", LastFrameTime: ts(2 * time.Hour),
				Recorders: []*understudyv1.Recorder{
					{NodeId: "a", Role: "home", State: understudyv1.StreamState_STREAM_STATE_RECORDING, Since: ts(time.Minute), LastFrameTime: ts(2 * time.Hour)},
					{NodeId: "b", Role: "replica", State: understudyv1.StreamState_STREAM_STATE_RECORDING, Since: ts(time.Minute), LastFrameTime: ts(2 * time.Hour)},
					{NodeId: "c", Role: "replica", State: understudyv1.StreamState_STREAM_STATE_CAMERA_UNREACHABLE, Reason: "connection refused", Since: ts(time.Hour)},
				}}},
		{Id: "yard", Url: "rtsps://cam2.lan/stream",
			Status: &understudyv1.StreamStatus{State: understudyv1.StreamState_STREAM_STATE_DISABLED, Reason: "disabled by an operator", Since: ts(0)}},
	}
	tl = &understudyv1.GetTimelineResponse{
		Coverage: []*understudyv1.CoverageInterval{
			{Start: ts(0), End: ts(60 * time.Second), NodeIds: []string{"a", "b"}, Origin: understudyv1.Origin_ORIGIN_LIVE},
			{Start: ts(90 * time.Second), End: ts(150*time.Second + 250*time.Millisecond), NodeIds: []string{"a"}, Origin: understudyv1.Origin_ORIGIN_BACKFILL},
		},
		Gaps: []*understudyv1.Gap{
			{Start: ts(60 * time.Second), End: ts(90 * time.Second), Kind: understudyv1.GapKind_GAP_KIND_SOURCE},
			{Start: ts(150*time.Second + 250*time.Millisecond), End: ts(180 * time.Second), Kind: understudyv1.GapKind_GAP_KIND_SYSTEM},
		},
	}
	nodes = []*understudyv1.Node{
		{Id: "a", Domain: "zone=a/host=h1", State: understudyv1.NodeState_NODE_STATE_ACTIVE, ApiAddress: "10.0.0.1:8080",
			HomeStreams: 3, ReplicaStreams: 2, CpuPercent: 12.34, DiskUsedBytes: 5 << 30, DiskFreeBytes: 1536 << 30,
			Version: "v0.1.0", Capacity: 1, StatsTime: ts(0)},
		{Id: "b", State: understudyv1.NodeState_NODE_STATE_DOWN},
	}
	as = []*understudyv1.Assignment{
		{StreamId: "door", NodeIds: []string{"a", "b", "c"}, Replicas: 3},
		{StreamId: "yard", NodeIds: []string{"b"}, Replicas: 2},
		{StreamId: "zoo", Replicas: 1},
	}
	ev = &understudyv1.Event{Time: ts(5 * time.Second), Kind: understudyv1.EventKind_EVENT_KIND_GAP_OPENED, StreamId: "door",
		NodeId: "a", Message: "camera stopped answering", Details: map[string]string{"start": "2026-03-01T12:00:05Z", "gap_kind": "source"}}
	return
}

func TestCtlTablesGolden(t *testing.T) {
	streams, tl, nodes, as, ev := ctlSample()
	var b bytes.Buffer
	section := func(name string, write func() error) {
		b.WriteString("== " + name + "\n")
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	section("streams list", func() error { return writeCtlStreams(&b, streams) })
	section("streams get", func() error { return writeCtlStream(&b, streams[0]) })
	section("timeline", func() error { return writeCtlTimeline(&b, tl) })
	section("timeline empty", func() error { return writeCtlTimeline(&b, &understudyv1.GetTimelineResponse{}) })
	section("nodes", func() error { return writeCtlNodes(&b, nodes) })
	section("placement", func() error { return writeCtlPlacement(&b, as) })
	section("event", func() error { _, err := b.WriteString(fmtCtlEvent(ev) + "\n"); return err })
	ctlGolden(t, "ctl_tables.golden", b.Bytes())
}

func ctlGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *ctlUpdateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update if intended):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestCtlJSONProtoNames(t *testing.T) {
	_, tl, nodes, as, _ := ctlSample()
	decode := func(v any) map[string]any {
		t.Helper()
		var b bytes.Buffer
		var err error
		switch m := v.(type) {
		case *understudyv1.GetTimelineResponse:
			err = writeCtlJSON(&b, m)
		case *understudyv1.ListNodesResponse:
			err = writeCtlJSON(&b, m)
		case *understudyv1.GetPlacementResponse:
			err = writeCtlJSON(&b, m)
		}
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(b.Bytes(), &out); err != nil {
			t.Fatalf("%v in %s", err, b.String())
		}
		return out
	}
	// An empty timeline still has both lists.
	empty := decode(&understudyv1.GetTimelineResponse{})
	for _, k := range []string{"coverage", "gaps"} {
		if l, ok := empty[k].([]any); !ok || len(l) != 0 {
			t.Errorf("empty timeline: %q = %#v, want []", k, empty[k])
		}
	}
	full := decode(tl)
	cov := full["coverage"].([]any)[0].(map[string]any)
	if ids, ok := cov["node_ids"].([]any); !ok || len(ids) != 2 {
		t.Errorf("coverage[0] node_ids = %#v", cov["node_ids"])
	}
	if cov["start"] != "2026-03-01T12:00:00Z" || cov["origin"] != "ORIGIN_LIVE" {
		t.Errorf("coverage[0] = %#v", cov)
	}
	if g := full["gaps"].([]any)[0].(map[string]any); g["kind"] != "GAP_KIND_SOURCE" {
		t.Errorf("gaps[0] = %#v", g)
	}
	n := decode(&understudyv1.ListNodesResponse{Nodes: nodes})["nodes"].([]any)[0].(map[string]any)
	for _, k := range []string{"api_address", "home_streams", "replica_streams", "cpu_percent", "disk_used_bytes", "stats_time"} {
		if _, ok := n[k]; !ok {
			t.Errorf("node JSON lacks %q: %v", k, n)
		}
	}
	if _, ok := n["apiAddress"]; ok {
		t.Errorf("node JSON uses lowerCamelCase names: %v", n)
	}
	a := decode(&understudyv1.GetPlacementResponse{Assignments: as})["assignments"].([]any)[2].(map[string]any)
	if ids, ok := a["node_ids"].([]any); !ok || len(ids) != 0 || a["stream_id"] != "zoo" {
		t.Errorf("assignment without nodes = %v, want node_ids []", a)
	}
}

func TestParseCtlEventKind(t *testing.T) {
	for _, in := range []string{"gap_opened", "GAP_OPENED", "EVENT_KIND_GAP_OPENED", "Gap_Opened"} {
		if k, err := parseCtlEventKind(in); err != nil || k != understudyv1.EventKind_EVENT_KIND_GAP_OPENED {
			t.Errorf("parseCtlEventKind(%q) = %v, %v", in, k, err)
		}
	}
	for _, in := range []string{"", "unspecified", "gap", "EVENT_KIND_"} {
		if _, err := parseCtlEventKind(in); err == nil {
			t.Errorf("parseCtlEventKind(%q) accepted", in)
		}
	}
	if !strings.Contains(fmtCtlEvent(&understudyv1.Event{Kind: understudyv1.EventKind_EVENT_KIND_NODE_JOINED}), "node_joined") {
		t.Error("event line lacks the kind")
	}
}

func FuzzParseCtlTime(f *testing.F) {
	for _, s := range []string{"now", "now-90s", "now-1d12h", "2026-03-01T12:00:00+01:00", "now+5m", "now-1d", "30d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseCtlTime(s, now); err != nil {
			return
		}
		if d, err := engine.ParseDuration(strings.TrimPrefix(strings.TrimSpace(s), "now-")); err == nil {
			// A duration that parses prints in a form that parses back to it.
			if back, err := engine.ParseDuration(fmtCtlRetention(d)); err != nil || back != d {
				t.Errorf("%q: %v printed as %q reads back as %v, %v", s, d, fmtCtlRetention(d), back, err)
			}
		}
	})
}

// TestCtlStreamsHelp: the streams group answers -h with its subcommands
// and exit 0, like every command does.
func TestCtlStreamsHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help", "help"} {
		var out, errb bytes.Buffer
		if code := ctlMain([]string{"streams", h}, &out, &errb); code != 0 || !strings.Contains(out.String(), "add ") || !strings.Contains(out.String(), "rm ") {
			t.Errorf("ctl streams %s: exit %d, stdout %q, stderr %q", h, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := ctlMain([]string{"streams", "frob"}, &out, &errb); code != 2 {
		t.Errorf("ctl streams frob: exit %d, want 2", code)
	}
}
