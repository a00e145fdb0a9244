package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestWriteTablePeer: a side-by-side row shows the peer's figures and the
// ratios; without the peer (skipped) they are "-", never a measured 0.
func TestWriteTablePeer(t *testing.T) {
	row := func(peer bool) PeerRow {
		r := PeerRow{Understudy: Side{Streams: 10, CPUPerStream: 1.14, RSSBytes: 84e6}}
		if peer {
			r.MediaMTX = Side{Streams: 10, CPUPerStream: 1.45, RSSBytes: 39e6}
			r.CPURatio, r.RSSRatio = 1.14/1.45, 84.0/39
		}
		return r
	}
	var with, without strings.Builder
	if err := WriteTable(&with, &Report{Peer: &PeerResult{Bitrate: 4e6, Peer: "MediaMTX", Rows: []PeerRow{row(true)}}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&without, &Report{Peer: &PeerResult{Bitrate: 4e6, Peer: "MediaMTX", Skipped: "no binary", Rows: []PeerRow{row(false)}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(with.String(), "1.45 %") || !strings.Contains(with.String(), "0.79") {
		t.Errorf("side by side lacks the peer's figures:\n%s", with.String())
	}
	last := strings.Fields(strings.TrimSpace(without.String())[strings.LastIndex(strings.TrimSpace(without.String()), "\n")+1:])
	if want := []string{"10", "1.14", "%", "-", "-", "84.0", "MB", "-", "-"}; strings.Join(last, " ") != strings.Join(want, " ") {
		t.Errorf("skipped peer row = %q, want %q:\n%s", last, want, without.String())
	}
}

// TestDistOf: the median and the nearest-rank p99 (the largest sample
// below 100 of them).
func TestDistOf(t *testing.T) {
	var ds []time.Duration
	for i := 200; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if d := distOf(ds); d.N != 200 || d.Median != 100 || d.P99 != 198 || d.Max != 200 {
		t.Errorf("200 samples 1..200 ms: %+v, want median 100, p99 198, max 200", d)
	}
	if d := distOf(ds[195:]); d.N != 5 || d.Median != 3 || d.P99 != 5 || d.Max != 5 {
		t.Errorf("5 samples 5..1 ms: %+v, want median 3, p99 5", d)
	}
	if d := distOf(nil); d != (Dist{}) {
		t.Errorf("no samples: %+v", d)
	}
}

func sampleReport() *Report {
	return &Report{
		Failover: &FailoverResult{Nodes: 3, Replicas: 2, Cameras: 3, Bitrate: 250_000, PollMS: 100,
			Down: Dist{N: 5, Median: 5210, P99: 6020, Max: 6020}, Recording: Dist{N: 5, Median: 7340, P99: 8800, Max: 8800},
			Trials: make([]FailoverTrial, 5), VideoLost: "not measured: no check"},
		Index: &IndexResult{
			Write:    &IndexWrite{Segments: 812, Seconds: 10.02, SegmentsPerSec: 81.04},
			Timeline: &IndexTimeline{Segments: 1440, Calls: 200, Latency: Dist{N: 200, Median: 3.4, P99: 9.75, Max: 12}},
			Startup:  &IndexStartup{Segments: 100_000, Streams: 10, StoreOpenMS: 2345, NodeReadyMS: 3456, Entries: 100_000, Files: 100_000, Cache: "warm (just written)"},
		},
		Control: &ControlResult{
			Placement: &PlacementScale{Streams: 100_000, Nodes: 1000, Replicas: 2, Runs: 3, FullWallMS: 812, FullCPUMS: 1490, FailWallMS: 41.5, FailCPUMS: 44.25},
			Gossip: &GossipScale{Nodes: 30, Convergence: Dist{N: 20, Median: 180, P99: 420, Max: 420},
				Detection: Dist{N: 29, Median: 5100, P99: 6400, Max: 6400}, DetectionAllMS: 6400},
		},
	}
}

// TestWriteTableParts: the failover, index and control figures are in the
// table, in the units they are measured in, and without an ingest part
// there is no empty ingest table.
func TestWriteTableParts(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	// Columns are padded: compare with runs of blanks made one.
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"3 nodes, 3 cameras at 250 kbit/s, R=2, 5 trials (polled every 100 ms)",
		"declared down by every survivor 5.21 s 6.02 s 6.02 s",
		"2 recording copies of every stream 7.34 s 8.80 s 8.80 s",
		"video lost: not measured: no check",
		"81 /s", "(812 in 10.0 s)",
		"GetTimeline over 24 h (1440 segments)", "median 3.4 ms, p99 9.8 ms",
		"start-up with 100,000 segments (10 streams)", "store open 2.35 s, node ready 3.46 s",
		"placement of 100,000 streams (R=2) on 1,000 nodes", "812 ms wall, 1490 ms CPU",
		"re-placement after one node failed", "41.5 ms wall, 44.2 ms CPU",
		"visible on all 30 gossip nodes", "median 180 ms, p99 420 ms", "(20 writes)",
		"kill → dead on all 29 survivors", "6.40 s (median survivor 5.10 s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(out, "BITRATE") {
		t.Errorf("an ingest table without ingest figures:\n%s", out)
	}
}

// TestReportJSONParts: the new parts' JSON names.
func TestReportJSONParts(t *testing.T) {
	var b strings.Builder
	if err := WriteJSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	get := func(path ...string) any {
		var v any = m
		for _, p := range path {
			o, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = o[p]
		}
		return v
	}
	for _, c := range []struct {
		path []string
		want float64
	}{
		{[]string{"failover", "declared_down", "median_ms"}, 5210},
		{[]string{"failover", "recording_again", "p99_ms"}, 8800},
		{[]string{"index", "write", "segments_per_s"}, 81.04},
		{[]string{"index", "timeline", "latency", "p99_ms"}, 9.75},
		{[]string{"index", "startup", "store_open_ms"}, 2345},
		{[]string{"index", "startup", "node_ready_ms"}, 3456},
		{[]string{"control", "placement", "full_wall_ms"}, 812},
		{[]string{"control", "placement", "after_failure_cpu_ms"}, 44.25},
		{[]string{"control", "gossip", "convergence", "median_ms"}, 180},
		{[]string{"control", "gossip", "detection_all_ms"}, 6400},
	} {
		if got, _ := get(c.path...).(float64); got != c.want {
			t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), get(c.path...), c.want)
		}
	}
	if _, ok := m["ingest"]; !ok {
		t.Error("no ingest key")
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1000000: "1,000,000"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
