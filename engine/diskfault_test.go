package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/internal/testkit"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
	"github.com/understudy-nvr/understudy/segment"
)

// failingDisk makes creates, writes and syncs of files under dir/segments
// fail with errno while on (a bad or full disk holding the recordings);
// the index, elsewhere, keeps working.
type failingDisk struct {
	dir   string
	on    atomic.Bool
	errno syscall.Errno
}

func (d *failingDisk) MaybeError(op errorfs.Op) error {
	if !d.on.Load() || !strings.HasPrefix(op.Path, d.dir+"/segments/") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileSync:
		return d.errno
	}
	return nil
}

func (d *failingDisk) String() string { return "failing disk" }

// nodeState is the state ListNodes gives node id through n's API.
func nodeState(t *testing.T, n *Node, id string) understudyv1.NodeState {
	t.Helper()
	cc := understudyv1connect.NewClusterServiceClient(client(testRead), "http://"+n.Addr())
	resp, err := cc.ListNodes(context.Background(), connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range resp.Msg.Nodes {
		if nd.Id == id {
			return nd.State
		}
	}
	return understudyv1.NodeState_NODE_STATE_UNSPECIFIED
}

// metricValue scrapes n's /metrics for the value of an unlabelled metric.
func metricValue(t *testing.T, n *Node, name string) string {
	t.Helper()
	resp, err := client(testRead).Get("http://" + n.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// diskEvents returns the DISK_FAULT events of the node itself (not of a
// segment) in sub so far, as their "state" details.
func diskEvents(sub *Subscription) (states []string, errnos []string) {
	for len(sub.C) > 0 {
		if e := <-sub.C; e.Kind == understudyv1.EventKind_EVENT_KIND_DISK_FAULT && e.Details["state"] != "" {
			states = append(states, e.Details["state"])
			errnos = append(errnos, e.Details["errno"])
		}
	}
	return states, errnos
}

// TestDiskFaultSaturatesNode: a lone node whose disk returns EIO on every
// segment write marks itself saturated (ListNodes, its own placement
// member, the understudy_disk_fault gauge, a DISK_FAULT event); an
// operator's "active" does not clear the mark; alone, it keeps trying
// to record every stream (nobody else can). Healed, it is active again by
// itself after diskProbesToRecover good probes in a row, not sooner, and
// records again. The time the disk refused is a gap, not silently lost.
func TestDiskFaultSaturatesNode(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 2, GOP: 25, Bitrate: 500_000})
	dir := t.TempDir()
	disk := &failingDisk{dir: dir, errno: syscall.EIO}
	n := runNode(t, Config{ID: "n1", DataDir: dir, Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		Transport: "tcp", SegmentDuration: 2 * time.Second, DiskFS: errorfs.Wrap(vfs.Default, disk)})
	sub := n.bus.Subscribe(4096)
	defer sub.Close()
	for i := range 2 {
		if _, err := n.catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	recordingAll := func() bool {
		for i := range 2 {
			if s := n.sessionOf(fmt.Sprintf("cam%d", i)); s == nil || !s.Recording() {
				return false
			}
		}
		return true
	}
	waitFor(t, 30*time.Second, "both streams recording", recordingAll)
	if st := nodeState(t, n, "n1"); st != understudyv1.NodeState_NODE_STATE_ACTIVE {
		t.Fatalf("state %v before the fault", st)
	}
	if v := metricValue(t, n, MetricDiskFault); v != "0" {
		t.Fatalf("%s = %q before the fault", MetricDiskFault, v)
	}

	disk.on.Store(true)
	faultAt := time.Now()
	detect := waitFor(t, 20*time.Second, "ListNodes saying saturated", func() bool {
		return nodeState(t, n, "n1") == understudyv1.NodeState_NODE_STATE_SATURATED
	})
	if m := n.members(); m[0].State.String() != cluster.StateSaturated {
		t.Errorf("own member %+v, want saturated", m[0])
	}
	if v := metricValue(t, n, MetricDiskFault); v != "1" {
		t.Errorf("%s = %q during the fault", MetricDiskFault, v)
	}
	// An operator's "active" is not the disk's: the mark stays.
	if err := n.SetNodeState(cluster.StateActive, 0); err != nil {
		t.Fatal(err)
	}
	if st := nodeState(t, n, "n1"); st != understudyv1.NodeState_NODE_STATE_SATURATED {
		t.Errorf("state %v after an operator's active, during the fault", st)
	}
	time.Sleep(3 * time.Second)
	// Alone, it records every stream still: placement over-records when
	// no node takes copies.
	if p := n.Placement(); len(p["cam0"]) != 1 || len(p["cam1"]) != 1 {
		t.Errorf("placement %v during the fault, want both streams on n1", p)
	}
	if r := n.Roles(); len(r) != 2 {
		t.Errorf("sessions %v during the fault, want both", r)
	}
	if recordingAll() {
		t.Error("sessions say they record while every write fails")
	}

	disk.on.Store(false)
	healedAt := time.Now()
	recovered := waitFor(t, 30*time.Second, "ListNodes saying active again", func() bool {
		return nodeState(t, n, "n1") == understudyv1.NodeState_NODE_STATE_ACTIVE
	})
	// Hysteresis: diskProbesToRecover probes diskProbeFaulted apart, the
	// first within diskProbeFaulted of the healing.
	if least := time.Duration(diskProbesToRecover-1) * diskProbeFaulted; recovered < least-200*time.Millisecond {
		t.Errorf("active again %v after the healing, want at least %v (%d good probes)", recovered, least, diskProbesToRecover)
	}
	if v := metricValue(t, n, MetricDiskFault); v != "0" {
		t.Errorf("%s = %q after the recovery", MetricDiskFault, v)
	}
	if v := metricValue(t, n, MetricDiskFaults); v != "1" {
		t.Errorf("%s = %q after one fault", MetricDiskFaults, v)
	}
	waitFor(t, 20*time.Second, "both streams recording again", recordingAll)
	time.Sleep(2 * time.Second)
	states, errnos := diskEvents(sub)
	if len(states) != 2 || states[0] != "saturated" || errnos[0] != syscall.EIO.Error() || states[1] != "recovered" {
		t.Errorf("DISK_FAULT events: states %v errnos %v, want saturated (EIO) then recovered", states, errnos)
	}
	for i := range 2 {
		id := fmt.Sprintf("cam%d", i)
		gaps, err := n.store.Gaps(id, faultAt.Add(-5*time.Second), time.Now().Add(-2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var lost time.Duration
		for _, g := range gaps {
			lost += g.Duration()
		}
		// The fault lasted from faultAt to healedAt: at least that is a gap
		// (less a part in flight), and at most that and the recovery.
		if fault := healedAt.Sub(faultAt); lost < fault-2*time.Second || lost > fault+recovered+5*time.Second {
			t.Errorf("%s: gaps %v (%v) for a fault of %v", id, gaps, lost, fault)
		}
	}
	t.Logf("EIO on every segment write: saturated in ListNodes %v after the fault began; healed after %v, active again %v later (%d probes %v apart); DISK_FAULT events %v",
		detect.Round(10*time.Millisecond), healedAt.Sub(faultAt).Round(100*time.Millisecond), recovered.Round(10*time.Millisecond), diskProbesToRecover, diskProbeFaulted, states)
}

// TestDiskFaultMovesStreams: in a 3-node cluster (R=2), the node whose
// disk returns ENOSPC becomes saturated on every node's view, its copies
// move to the two others (which record every stream, so each stream is
// recorded throughout by a node that can write), and it stops recording;
// healed, it takes its copies back: the placement is the one before the
// fault, and it records them again.
func TestDiskFaultMovesStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster through a disk fault: about 40 s")
	}
	const streams = 3
	cams := testkit.StartCameras(t, camsim.Config{Cameras: streams, GOP: 25, Bitrate: 300_000})
	var disk *failingDisk
	nodes, _ := runCluster(t, 3, func(i int, cfg *Config) {
		cfg.SegmentDuration, cfg.RejoinHold, cfg.Transport = 2*time.Second, 2*time.Second, "tcp"
		if i == 2 {
			disk = &failingDisk{dir: cfg.DataDir, errno: syscall.ENOSPC}
			cfg.DiskFS = errorfs.Wrap(vfs.Default, disk)
		}
	})
	n3 := nodes[2]
	sub := n3.bus.Subscribe(4096)
	defer sub.Close()
	for i := range streams {
		if _, err := nodes[0].catalog.Create(catalog.Stream{ID: fmt.Sprintf("cam%d", i), URL: cams.URL(i), Enabled: true, Replicas: 2}); err != nil {
			t.Fatal(err)
		}
	}
	agree := func(check func(map[string][]string) bool) bool {
		p0 := nodes[0].Placement()
		for _, n := range nodes[1:] {
			if !maps.EqualFunc(p0, n.Placement(), slices.Equal[[]string]) {
				return false
			}
		}
		return len(p0) == streams && check(p0)
	}
	// recordsPlaced: every stream n places on itself has media since.
	recordsPlaced := func(n *Node, since time.Time) bool {
		for id, ns := range n.Placement() {
			if !slices.Contains(ns, n.cfg.ID) {
				continue
			}
			cov, err := n.store.Coverage(id, since, time.Now())
			if err != nil || len(cov) == 0 {
				return false
			}
		}
		return true
	}
	var before map[string][]string
	waitFor(t, 40*time.Second, "3 nodes agreeing on 2 copies of every stream, all recording", func() bool {
		ok := agree(func(p map[string][]string) bool {
			for _, ns := range p {
				if len(ns) != 2 {
					return false
				}
			}
			return true
		})
		for _, n := range nodes {
			ok = ok && recordsPlaced(n, time.Now().Add(-3*time.Second))
		}
		before = nodes[0].Placement()
		return ok
	})
	onN3 := 0
	for _, ns := range before {
		if slices.Contains(ns, "n3") {
			onN3++
		}
	}
	if onN3 == 0 {
		t.Fatalf("placement %v puts nothing on n3: the test shows nothing", before)
	}

	disk.on.Store(true)
	faultAt := time.Now()
	moved := waitFor(t, 40*time.Second, "every node placing the streams on n1 and n2 only, and n3 recording nothing", func() bool {
		return agree(func(p map[string][]string) bool {
			for _, ns := range p {
				if !slices.Equal(ns, []string{"n1", "n2"}) && !slices.Equal(ns, []string{"n2", "n1"}) {
					return false
				}
			}
			return true
		}) && len(n3.Roles()) == 0 && recordsPlaced(nodes[0], faultAt.Add(time.Second)) && recordsPlaced(nodes[1], faultAt.Add(time.Second))
	})
	movedAt := time.Now()
	if st := nodeState(t, nodes[0], "n3"); st != understudyv1.NodeState_NODE_STATE_SATURATED {
		t.Errorf("n1 lists n3 as %v, want saturated", st)
	}
	// Each stream kept a recorder that can write: the union of what n1
	// and n2 hold has no hole over the fault.
	for i := range streams {
		id := fmt.Sprintf("cam%d", i)
		var all []segment.Interval
		for _, n := range nodes[:2] {
			cov, err := n.store.Coverage(id, faultAt.Add(-time.Second), movedAt.Add(-2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, cov...)
		}
		if gaps := segment.Subtract(segment.Interval{Start: faultAt.Add(-time.Second), End: movedAt.Add(-2 * time.Second)}, segment.Merge(all)); len(gaps) > 0 {
			t.Errorf("%s: n1 and n2 together miss %v during the fault", id, gaps)
		}
	}

	disk.on.Store(false)
	healedAt := time.Now()
	back := waitFor(t, 40*time.Second, "the placement of before the fault, n3 recording its streams again", func() bool {
		return agree(func(p map[string][]string) bool { return maps.EqualFunc(p, before, slices.Equal[[]string]) }) &&
			recordsPlaced(n3, healedAt.Add(time.Second))
	})
	if st := nodeState(t, nodes[0], "n3"); st != understudyv1.NodeState_NODE_STATE_ACTIVE {
		t.Errorf("n1 lists n3 as %v after the healing, want active", st)
	}
	states, errnos := diskEvents(sub)
	if len(states) != 2 || states[0] != "saturated" || errnos[0] != syscall.ENOSPC.Error() || states[1] != "recovered" {
		t.Errorf("n3's DISK_FAULT events: states %v errnos %v, want saturated (ENOSPC) then recovered", states, errnos)
	}
	t.Logf("ENOSPC on n3 (%d of %d streams placed on it): its copies on n1 and n2, n3 recording nothing %v after the fault; healed, the old placement back and n3 recording %v after (n1+n2 held every stream throughout)",
		onN3, streams, moved.Round(100*time.Millisecond), back.Round(100*time.Millisecond))
}

// TestDiskFaultErrno: what counts as the disk refusing writes, wrapped
// as the segment writer and the OS wrap it; other errors do not.
func TestDiskFaultErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("segment: write part: %w", &os.PathError{Op: "write", Path: "/d/x.mp4", Err: syscall.EIO}), true},
		{fmt.Errorf("segment: create: %w", syscall.ENOSPC), true},
		{syscall.EDQUOT, true},
		{syscall.EROFS, true},
		{fmt.Errorf("open: %w", syscall.EMFILE), false},
		{errors.New("segment: stream cam1: frame without payload or wall time"), false},
		{nil, false},
	} {
		if _, got := diskFaultErrno(tc.err); got != tc.want {
			t.Errorf("diskFaultErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestDiskHealthHysteresis: diskProbesToRecover good probes in a row end
// a fault, a write error between them starts the count again; the
// saturated mark yields to an operator's draining and survives an
// operator's active.
func TestDiskHealthHysteresis(t *testing.T) {
	n := &Node{disk: newDiskHealth(), selfState: cluster.StateActive}
	if n.disk.probed() {
		t.Fatal("a good probe on a healthy disk ended a fault")
	}
	n.noteWriteError(fmt.Errorf("write: %w", syscall.EMFILE))
	if f, _, _ := n.disk.state(); f {
		t.Fatal("EMFILE made a disk fault")
	}
	n.noteWriteError(fmt.Errorf("write: %w", syscall.EIO))
	if got := n.stateLocked(); got != cluster.StateSaturated {
		t.Fatalf("state %q during a fault", got)
	}
	n.selfState = cluster.StateDraining
	if got := n.stateLocked(); got != cluster.StateDraining {
		t.Errorf("state %q for a draining node during a fault, want draining", got)
	}
	n.selfState = cluster.StateActive
	for i := 1; i < diskProbesToRecover; i++ {
		if n.disk.probed() {
			t.Fatalf("fault ended after %d good probes", i)
		}
	}
	n.noteWriteError(fmt.Errorf("write: %w", syscall.ENOSPC)) // the count starts again
	for i := 1; i < diskProbesToRecover; i++ {
		if n.disk.probed() {
			t.Fatalf("fault ended after %d good probes following a write error", i)
		}
	}
	if !n.disk.probed() {
		t.Fatalf("fault not ended after %d good probes in a row", diskProbesToRecover)
	}
	if got := n.stateLocked(); got != cluster.StateActive {
		t.Errorf("state %q after the recovery", got)
	}
	if n.disk.faults != 1 {
		t.Errorf("%d faults counted, want 1", n.disk.faults)
	}
}

// TestLowDiskSpaceSaturates: a data file system below
// --disk-free-min-percent (2 %) makes the node saturated with an event
// that says the disk is nearly full; just above the threshold (within the
// 1-point hysteresis) it stays saturated; with room again it is active
// after the recovery probes.
func TestLowDiskSpaceSaturates(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the disk probes: about 30 s")
	}
	var availPermille atomic.Int64
	availPermille.Store(500)
	n := runNode(t, Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin, ReadToken: testRead,
		DiskSpace: func() (uint64, uint64) { return uint64(availPermille.Load()) << 20, 1000 << 20 }})
	sub := n.bus.Subscribe(256)
	defer sub.Close()
	time.Sleep(diskProbeHealthy + time.Second)
	if st := nodeState(t, n, "n1"); st != understudyv1.NodeState_NODE_STATE_ACTIVE {
		t.Fatalf("state %v with half the disk free", st)
	}
	availPermille.Store(15) // 1.5 %
	detect := waitFor(t, 2*diskProbeHealthy, "saturated for low space", func() bool {
		return nodeState(t, n, "n1") == understudyv1.NodeState_NODE_STATE_SATURATED
	})
	var msg string
	for len(sub.C) > 0 {
		if e := <-sub.C; e.Kind == understudyv1.EventKind_EVENT_KIND_DISK_FAULT && e.Details["state"] == "saturated" {
			msg = e.Message
		}
	}
	if !strings.Contains(msg, "nearly full (1.5 % available, below 2.0 %)") {
		t.Errorf("DISK_FAULT event %q, want it to say the disk is nearly full", msg)
	}
	availPermille.Store(25) // 2.5 %: above the threshold, inside the hysteresis
	time.Sleep(diskProbesToRecover*diskProbeFaulted + 2*time.Second)
	if st := nodeState(t, n, "n1"); st != understudyv1.NodeState_NODE_STATE_SATURATED {
		t.Errorf("state %v at 2.5 %% available, want saturated still (hysteresis to 3 %%)", st)
	}
	availPermille.Store(100)
	recover := waitFor(t, 20*time.Second, "active again with 10 % available", func() bool {
		return nodeState(t, n, "n1") == understudyv1.NodeState_NODE_STATE_ACTIVE
	})
	t.Logf("low disk space: saturated %s after the space fell to 1.5 %%; active %s after it rose to 10 %%", detect.Round(100*time.Millisecond), recover.Round(100*time.Millisecond))
}
