package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/chaos/check"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// waitFor polls cond every 100 ms until it holds or timeout passes (a
// fatal error naming what), and returns how long it took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// TestDiskStallLosesNothing is done-when 2 of issue 11: a node records 20
// simulated 4 Mbit/s cameras while its disk blocks every write (segment
// files and index) for a while; the recording queues hold what arrives
// (within the node's queue memory) and write it once the disk is back.
// The archive then has no gap over the whole run, and every frame each
// camera's send log says it sent in that time is in an export of it, once
// and in order (chaos/check). The stall is 5 s with 8 cameras in make
// test, 30 s with 20 (about 300 MB held) with CHAOS_LONG=1:
//
//	CHAOS_LONG=1 go test -tags pebblegozstd -run TestDiskStallLosesNothing -v ./engine/
func TestDiskStallLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("20 cameras of 4 Mbit/s and a disk stall")
	}
	stallFor, streams := 5*time.Second, 8
	switch {
	case os.Getenv("CHAOS_LONG") != "" && raceEnabled:
		// Measured on 2 shared cores: instrumented, writing out 300 MB
		// while 20 cameras go on starves the RTSP readers of CPU, and the
		// cameras drop packets; that measures the race detector.
		t.Log("CHAOS_LONG under the race detector: the 5 s, 8-camera size; run the 30 s, 20-camera one without -race")
	case os.Getenv("CHAOS_LONG") != "":
		stallFor, streams = 30*time.Second, 20
		// make bench: the same with 50 cameras (about 750 MB held).
		if v, err := strconv.Atoi(os.Getenv("UNDERSTUDY_STALL_CAMERAS")); err == nil && v > 0 {
			streams = v
		}
	}
	logDir := t.TempDir()
	cams := testkit.StartCameras(t, camsim.Config{Cameras: streams, GOP: 25, Bitrate: 4_000_000, SendLogDir: logDir})
	dataDir := t.TempDir()
	disk := &testkit.StallDisk{Match: testkit.WritesUnder(dataDir)}
	defer disk.Resume() // a failed test must not leave the node blocked in its cleanup
	n := runNode(t, Config{ID: "n1", DataDir: dataDir, Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		Transport: "tcp", SegmentDuration: 10 * time.Second, DiskFS: errorfs.Wrap(vfs.Default, disk)})
	sub := n.bus.Subscribe(4096)
	defer sub.Close()
	for i := range streams {
		if _, err := n.catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	allRecording := func() bool {
		for i := range streams {
			s := n.sessionOf(fmt.Sprintf("cam%d", i))
			if s == nil || !s.Recording() {
				return false
			}
		}
		return true
	}
	t0 := time.Now()
	took := waitFor(t, 90*time.Second, "every stream recording", allRecording)
	t.Logf("%d streams recording %v after they were added", streams, took.Round(100*time.Millisecond))
	// The checked window starts once every stream records (a recorder
	// cannot record before its first keyframe) and ends after the stall
	// was written out.
	from := time.Now().Add(time.Second)
	time.Sleep(3 * time.Second)

	disk.Stall()
	stalledAt := time.Now()
	waitFor(t, 10*time.Second, "writes blocked on the stalled disk", func() bool { return disk.Waiting() > 0 })
	parts0 := n.store.Stats().PartsWritten
	var peak int64
	for time.Since(stalledAt) < stallFor {
		peak = max(peak, n.queueMemory.Used())
		time.Sleep(20 * time.Millisecond)
	}
	partsInStall := n.store.Stats().PartsWritten - parts0
	blocked := disk.Waiting()
	disk.Resume()
	resumedAt := time.Now()
	// Written out at the disk's pace: the deadline is generous (a loaded
	// machine under the race detector writes a few MB/s beyond the live
	// streams), the progress is logged.
	lastLog := resumedAt
	drained := waitFor(t, 4*time.Minute, "the queues written out", func() bool {
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			t.Logf("%v after the stall: %.0f MiB queued", time.Since(resumedAt).Round(time.Second), float64(n.queueMemory.Used())/(1<<20))
		}
		return n.queueMemory.Used() < 4<<20
	})
	time.Sleep(2 * time.Second)
	to := time.Now()
	time.Sleep(3 * time.Second) // the parts holding [.., to) are durable
	if partsInStall > 0 {
		t.Errorf("%d parts written while the disk was stalled: the stall did not hold", partsInStall)
	}
	if peak > n.queueMemory.Limit() {
		t.Errorf("queue peak %d over the node's budget %d", peak, n.queueMemory.Limit())
	}

	if err := n.store.IndexErr(); err != nil {
		t.Errorf("segment index after the stall: %v", err)
	}
	if f, _, err := n.disk.state(); f {
		t.Errorf("a stalled disk, not a failing one, made the node saturated: %v", err)
	}
	checkedAt := time.Now()
	var sent, present, lost, dups int
	var totalBytes uint64
	for i := range streams {
		id := fmt.Sprintf("cam%d", i)
		gaps, err := n.store.Gaps(id, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(gaps) > 0 {
			t.Errorf("%s: gaps %v in its archive over %v..%v (stall at %v)", id, gaps, from.Format("15:04:05.000"), to.Format("15:04:05.000"), stalledAt.Format("15:04:05.000"))
		}
		// Nothing timed out over the stall: no camera connection ended,
		// no write failed, the index works.
		if st := n.sessionOf(id).Stats(); st.Dropped > 0 || st.WriteErrors > 0 || st.Reconnects > 0 {
			t.Errorf("%s: %d frames dropped, %d write errors, %d reconnects (%s)", id, st.Dropped, st.WriteErrors, st.Reconnects, st.LastError)
		} else {
			totalBytes += st.Bytes
		}
		var b bytes.Buffer
		if _, err := n.store.Export(context.Background(), id, from, to, &b); err != nil {
			t.Fatalf("%s: export: %v", id, err)
		}
		frames, err := check.ExtractFrames(b.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		log, err := camsim.ReadSendLogFile(camsim.SendLogPath(logDir, i))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := check.Check(frames, log, check.Options{Stream: id, Camera: i, From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		sent += rep.Sent
		present += rep.Present
		lost += rep.Lost
		dups += rep.Duplicates
		if !rep.Pass || rep.Lost > 0 || rep.Present < rep.Sent {
			t.Errorf("%s: sent %d, present %d, lost %d %v, duplicates %d, problems %v", id, rep.Sent, rep.Present, rep.Lost, rep.LostRanges, rep.Duplicates, rep.Problems)
		}
	}
	overflows := 0
	for len(sub.C) > 0 {
		if e := <-sub.C; e.Kind == understudyv1.EventKind_EVENT_KIND_GAP_OPENED && e.Details["gap_kind"] == "GAP_KIND_SYSTEM" {
			overflows++
		}
	}
	if overflows > 0 {
		t.Errorf("%d system gap events: the queues overflowed", overflows)
	}
	t.Logf("setup %v, checks %v", stalledAt.Sub(t0).Round(100*time.Millisecond), time.Since(checkedAt).Round(100*time.Millisecond))
	minSent := int(to.Sub(from).Seconds()*25*float64(streams)) * 9 / 10
	if sent < minSent {
		t.Errorf("the cameras sent %d frames over %v, want at least %d: the run checks too little", sent, to.Sub(from).Round(time.Second), minSent)
	}
	t.Logf("%d cameras of 4 Mbit/s, every write blocked %v (%d operations waiting at the end): queue peak %.0f MiB of %d MiB, written out %v after the disk came back (%.1f s of media, %v after the stall began); over %v: %d frames sent, %d in the archive, %d lost, %d twice; %d system gap events, %.0f MiB recorded",
		streams, stallFor, blocked, float64(peak)/(1<<20), n.queueMemory.Limit()>>20, drained.Round(100*time.Millisecond),
		to.Sub(from).Seconds(), resumedAt.Add(drained).Sub(stalledAt).Round(100*time.Millisecond), to.Sub(from).Round(time.Second),
		sent, present, lost, dups, overflows, float64(totalBytes)/(1<<20))
}

// TestDiskStallBeyondBudget: a stall longer than the node's queue memory
// holds loses frames, and says exactly which: every frame the checker
// finds missing lies in a SYSTEM gap of the index, and every such gap is
// announced by a GAP_OPENED event at its start and a GAP_CLOSED event
// naming its start and end. Nothing else is lost.
func TestDiskStallBeyondBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("cameras of 4 Mbit/s and a disk stall")
	}
	const streams = 6
	logDir := t.TempDir()
	cams := testkit.StartCameras(t, camsim.Config{Cameras: streams, GOP: 25, Bitrate: 4_000_000, SendLogDir: logDir})
	dataDir := t.TempDir()
	disk := &testkit.StallDisk{Match: testkit.WritesUnder(dataDir)}
	defer disk.Resume()
	// 16 MiB hold about 5 s of six 4 Mbit/s cameras; the stall is 10 s.
	n := runNode(t, Config{ID: "n1", DataDir: dataDir, Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		Transport: "tcp", SegmentDuration: 10 * time.Second, QueueMemoryMiB: 16, DiskFS: errorfs.Wrap(vfs.Default, disk)})
	sub := n.bus.Subscribe(4096)
	defer sub.Close()
	for i := range streams {
		if _, err := n.catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "every stream recording", func() bool {
		for i := range streams {
			if s := n.sessionOf(fmt.Sprintf("cam%d", i)); s == nil || !s.Recording() {
				return false
			}
		}
		return true
	})
	from := time.Now().Add(time.Second)
	time.Sleep(3 * time.Second)
	disk.Stall()
	stalledAt := time.Now()
	var peak int64
	for time.Since(stalledAt) < 10*time.Second {
		peak = max(peak, n.queueMemory.Used())
		time.Sleep(20 * time.Millisecond)
	}
	disk.Resume()
	waitFor(t, 2*time.Minute, "the queues written out", func() bool { return n.queueMemory.Used() < 2<<20 })
	time.Sleep(4 * time.Second) // recording resumed at a keyframe, then 3 s more
	to := time.Now()
	time.Sleep(3 * time.Second)
	if peak > n.queueMemory.Limit() {
		t.Errorf("queue peak %d over the node's budget %d", peak, n.queueMemory.Limit())
	}

	type gapEvent struct{ start, end time.Time }
	opened := map[string][]time.Time{}
	closed := map[string][]gapEvent{}
	for len(sub.C) > 0 {
		e := <-sub.C
		if e.Details["gap_kind"] != "GAP_KIND_SYSTEM" {
			continue
		}
		start, _ := time.Parse(time.RFC3339Nano, e.Details["start"])
		switch e.Kind {
		case understudyv1.EventKind_EVENT_KIND_GAP_OPENED:
			opened[e.Stream] = append(opened[e.Stream], start)
		case understudyv1.EventKind_EVENT_KIND_GAP_CLOSED:
			end, _ := time.Parse(time.RFC3339Nano, e.Details["end"])
			closed[e.Stream] = append(closed[e.Stream], gapEvent{start, end})
		}
	}
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() <= 100*time.Millisecond }
	var lostFrames, gapCount int
	var lostTime time.Duration
	for i := range streams {
		id := fmt.Sprintf("cam%d", i)
		gaps, err := n.store.Gaps(id, from, to)
		if err != nil {
			t.Fatal(err)
		}
		gapCount += len(gaps)
		if len(gaps) != len(closed[id]) || len(gaps) != len(opened[id]) {
			t.Errorf("%s: index gaps %v, GAP_OPENED at %v, GAP_CLOSED %v: want one of each per gap", id, gaps, opened[id], closed[id])
		}
		for k, g := range gaps {
			lostTime += g.Duration()
			if k < len(closed[id]) && (!near(g.Start, closed[id][k].start) || !g.End.Equal(closed[id][k].end)) {
				t.Errorf("%s: index gap %v..%v, event says %v..%v", id, g.Start, g.End, closed[id][k].start, closed[id][k].end)
			}
			if k < len(opened[id]) && !near(g.Start, opened[id][k]) {
				t.Errorf("%s: index gap from %v, GAP_OPENED from %v", id, g.Start, opened[id][k])
			}
			if g.Start.Before(stalledAt) {
				t.Errorf("%s: gap %v..%v starts before the stall at %v", id, g.Start, g.End, stalledAt)
			}
		}
		var b bytes.Buffer
		if _, err := n.store.Export(context.Background(), id, from, to, &b); err != nil {
			t.Fatalf("%s: export: %v", id, err)
		}
		frames, err := check.ExtractFrames(b.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		log, err := camsim.ReadSendLogFile(camsim.SendLogPath(logDir, i))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := check.Check(frames, log, check.Options{Stream: id, Camera: i, From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		lostFrames += rep.Lost
		if rep.Duplicates > 0 || rep.OutOfOrder > 0 || rep.Phantom > 0 {
			t.Errorf("%s: %d duplicates, %d out of order, %d phantoms", id, rep.Duplicates, rep.OutOfOrder, rep.Phantom)
		}
		// Every lost frame lies in a gap of the index (its time is the
		// camera's; the node stamps frames within a few ms of it).
		for _, r := range rep.LostRanges {
			in := false
			for _, g := range gaps {
				if !r.Start.Before(g.Start.Add(-100*time.Millisecond)) && !r.End.After(g.End.Add(100*time.Millisecond)) {
					in = true
				}
			}
			if !in {
				t.Errorf("%s: frames %d..%d (%v..%v) lost outside the index gaps %v", id, r.First, r.Last, r.Start, r.End, gaps)
			}
		}
	}
	if gapCount == 0 || lostFrames == 0 {
		t.Errorf("%d gaps, %d frames lost: the stall did not outgrow the budget, the test shows nothing", gapCount, lostFrames)
	}
	t.Logf("%d cameras of 4 Mbit/s, disk stalled 10 s, queue memory %d MiB (peak %.1f MiB): %d system gaps (%.1f s in all), each announced opened and closed with its exact range; %d frames lost, all inside them",
		streams, n.queueMemory.Limit()>>20, float64(peak)/(1<<20), gapCount, lostTime.Seconds(), lostFrames)
}
