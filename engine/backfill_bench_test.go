package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	"github.com/understudy-nvr/understudy/segment"
)

// BenchmarkBackfillFromPeer is done-when 4 of backfill: the home n1
// copies 1 GiB of archive it lacks from its peer n2 (ListSegments, then
// ReadSegment over loopback, checksum, fsync, index) while both nodes
// record 20 live 4 Mbit/s cameras; it reports the copy rate, the CPU the
// copy costs above the recording's own, and fails if a live stream
// dropped a frame, had a write error or a hole meanwhile. The rate bound
// is lifted (--backfill-rate-mib 100000) to measure what the path can do;
// the default bound is 100 MiB/s.
func BenchmarkBackfillFromPeer(b *testing.B) {
	const live = 20
	const bulkBytes = 1 << 30
	cams := testkit.StartCameras(b, camsim.Config{Cameras: live, GOP: 50, Bitrate: 4_000_000, Width: 1280, Height: 720})
	nodes, _ := runCluster(b, 2, func(_ int, cfg *Config) { cfg.SegmentDuration, cfg.BackfillRateMiB = 0, 100_000 })
	n1, n2 := nodes[0], nodes[1]
	// The bulk stream: disabled (nobody records it live), 1 GiB of
	// archive on n2 over the past hour, none on n1.
	if _, err := n1.catalog.Create(catalog.Stream{ID: "bulk", URL: "rtsp://127.0.0.1:1/bulk", Enabled: false, Replicas: 2}); err != nil {
		b.Fatal(err)
	}
	from := time.Now().Add(-time.Hour).Truncate(time.Second)
	to := writeBulk(b, n2.store, "bulk", from, bulkBytes)
	for i := range live {
		if _, err := n1.catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true, Replicas: 2}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, _, r1 := n1.sessionTotals()
		_, _, r2 := n2.sessionTotals()
		if r1 == live && r2 == live {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("live streams recording: n1 %d, n2 %d of %d", r1, r2, live)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	// The recording's own CPU rate, to charge the copy only its share.
	c0, w0 := cpuTime(), time.Now()
	time.Sleep(5 * time.Second)
	baseRate := float64(cpuTime()-c0) / float64(time.Since(w0))
	st0, _, _ := n1.sessionTotals()
	st20, _, _ := n2.sessionTotals()
	b.ResetTimer()
	var copied int64
	var elapsed time.Duration
	var cpu time.Duration
	t0 := time.Now()
	for range b.N {
		c, w := cpuTime(), time.Now()
		res, err := n1.filler.Repair(context.Background(), "bulk", from, to)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(w)
		elapsed += d
		cpu += cpuTime() - c - time.Duration(baseRate*float64(d))
		copied += res.Bytes
		if len(res.Pending) != 0 || res.Bytes < bulkBytes*9/10 {
			b.Fatalf("repair copied %d bytes, pending %v", res.Bytes, res.Pending)
		}
		b.StopTimer()
		if _, err := n1.store.DeleteBefore("bulk", segment.ClassArchive, to.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
		n1.filler.Forget("bulk")
		b.StartTimer()
	}
	b.StopTimer()
	t1 := time.Now()
	st1, _, _ := n1.sessionTotals()
	st21, _, _ := n2.sessionTotals()
	if d := st1.Dropped - st0.Dropped + st21.Dropped - st20.Dropped; d != 0 {
		b.Errorf("%d live frames dropped during the backfill", d)
	}
	if d := st1.WriteErrors - st0.WriteErrors; d != 0 {
		b.Errorf("%d live write errors during the backfill", d)
	}
	for i := range live {
		id := fmt.Sprintf("cam%d", i)
		if gaps, _ := n1.store.Gaps(id, t0, t1.Add(-2*time.Second)); len(gaps) != 0 {
			b.Errorf("%s: gaps on the home while it backfilled: %v", id, gaps)
		}
	}
	mbps := float64(copied) / 1e6 / elapsed.Seconds()
	b.ReportMetric(mbps, "MB/s")
	b.ReportMetric(cpu.Seconds()/(float64(copied)/1e9), "cpu-s/GB")
	b.ReportMetric(0, "ns/op")
	b.Logf("backfill from a peer: %d MB in %s = %.0f MB/s, %.2f CPU-s per GB above the recording's own (%.0f %% of a core recording %d streams on each of 2 nodes and their cameras)",
		copied/1e6, elapsed.Round(time.Millisecond), mbps, cpu.Seconds()/(float64(copied)/1e9), baseRate*100, live)
}

// writeBulk writes about n bytes of 40 Mbit/s synthetic video as closed
// 10 s archive segments of stream into s from start; it returns the end.
func writeBulk(b *testing.B, s *segment.Store, stream string, start time.Time, n int64) time.Time {
	b.Helper()
	const fps = 25
	st, err := h264synth.New(h264synth.Params{Width: 640, Height: 480, FPS: fps, GOP: fps, Bitrate: 40_000_000})
	if err != nil {
		b.Fatal(err)
	}
	var w *segment.Writer
	var written int64
	t := start
	for i := 0; written < n; i++ {
		t = start.Add(time.Duration(i) * time.Second / fps)
		f := st.Next(h264synth.Stamp{Camera: 99, Frame: uint64(i), Time: t})
		if w == nil {
			w, err = s.NewWriter(segment.WriterConfig{Stream: stream, SegmentDuration: 10 * time.Second,
				Tracks: []segment.Track{{ClockRate: 90000, Codec: &mp4.CodecH264{SPS: bytes.Clone(f.NALUs[0]), PPS: bytes.Clone(f.NALUs[1])}}}})
			if err != nil {
				b.Fatal(err)
			}
		}
		var avcc []byte
		for _, nl := range f.NALUs {
			avcc = binary.BigEndian.AppendUint32(avcc, uint32(len(nl)))
			avcc = append(avcc, nl...)
		}
		pts := int64(i) * 90000 / fps
		if err := w.WriteFrame(segment.Frame{PTS: pts, DTS: pts, Wall: t, Random: f.IDR, Payload: avcc}); err != nil {
			b.Fatal(err)
		}
		written += int64(len(avcc))
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return t.Add(time.Second)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
