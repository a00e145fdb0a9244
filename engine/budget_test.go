package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/session"
	"github.com/understudy-nvr/understudy/internal/testkit"
	"github.com/understudy-nvr/understudy/segment"
)

// TestSessionsShareQueueMemory: while the disk is stalled, the recording
// queues of all sessions together never hold more than the node's
// MemoryBudget (each session alone could hold 64 MiB); when it is full the
// sessions drop to the next keyframe and say so (an overflow event naming
// the node's queue memory), and after the stall they record again. Every
// byte taken is given back.
func TestSessionsShareQueueMemory(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 3, GOP: 25, Bitrate: 4_000_000})
	disk := &testkit.StallDisk{Match: testkit.SegmentWrites}
	st, err := segment.Open(segment.Options{Dir: t.TempDir(), FS: errorfs.Wrap(vfs.Default, disk)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	budget := session.NewMemoryBudget(2 << 20)
	var overflows atomic.Int32
	var sessions []*session.Session
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 3 {
		s, err := session.New(st, session.Config{Stream: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Transport: "tcp", Memory: budget,
			SegmentDuration: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnEvent: func(e session.Event) {
				if e.Kind == session.EventOverflow && strings.Contains(e.Message, "queue memory") {
					overflows.Add(1)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(ctx) }()
	}
	framesNow := func() (n uint64) {
		for _, s := range sessions {
			n += s.Stats().Frames
		}
		return n
	}
	time.Sleep(2 * time.Second)
	disk.Stall()
	var peak int64
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		peak = max(peak, budget.Used())
	}
	before := framesNow()
	disk.Resume()
	time.Sleep(3 * time.Second)
	after := framesNow()
	cancel()
	wg.Wait()
	t.Logf("3 cameras at 4 Mbit/s, disk stalled 4 s: node queue peak %d of %d bytes, %d overflow events, %d frames written after the stall",
		peak, budget.Limit(), overflows.Load(), after-before)
	if peak > budget.Limit() {
		t.Errorf("queues held %d bytes, over the node's budget of %d", peak, budget.Limit())
	}
	if peak < budget.Limit()/2 || overflows.Load() == 0 {
		t.Errorf("a 4 s stall of 1.5 MB/s: queue peak %d, %d overflow events; want the budget filled and overflows reported", peak, overflows.Load())
	}
	if after-before < 100 {
		t.Errorf("%d frames written in the 3 s after the stall: recording did not resume", after-before)
	}
	if u := budget.Used(); u != 0 {
		t.Errorf("%d bytes still taken after every session stopped", u)
	}
}
