package segment

import (
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// segmentFault injects errno into the chosen operations on segment files
// (not the index) while on.
type segmentFault struct {
	on    atomic.Bool
	errno syscall.Errno
	kinds []errorfs.OpKind
}

func (f *segmentFault) MaybeError(op errorfs.Op) error {
	if !f.on.Load() || !strings.Contains(op.Path, "/segments/") {
		return nil
	}
	for _, k := range f.kinds {
		if op.Kind == k {
			return f.errno
		}
	}
	return nil
}

func (f *segmentFault) String() string { return "segment fault" }

// TestWriteFaults injects EIO and ENOSPC on writes (and EIO on fsync) for
// 2 s in the middle of 10 s of recording: WriteFrame reports the cause, the
// segment ends at its last durable part, the loss shows up in Gaps, the
// writer recovers by itself and the index stays consistent.
func TestWriteFaults(t *testing.T) {
	m := loadMedia(t)
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
		kinds []errorfs.OpKind
	}{
		{"EIO-write", syscall.EIO, []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpCreate, errorfs.OpMkdirAll}},
		{"ENOSPC-write", syscall.ENOSPC, []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpCreate}},
		{"EIO-fsync", syscall.EIO, []errorfs.OpKind{errorfs.OpFileSync}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			fault := &segmentFault{errno: tc.errno, kinds: tc.kinds}
			fs := errorfs.Wrap(mem, fault)
			s := openTestStore(t, Options{Dir: "/data", FS: fs})
			w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true)})
			if err != nil {
				t.Fatal(err)
			}
			frames := m.frames(testWall0, true, 10*testFPS)
			faultFrom, faultTo := testWall0.Add(3500*time.Millisecond), testWall0.Add(5500*time.Millisecond)
			var errs []error
			for _, f := range frames {
				fault.on.Store(!f.Wall.Before(faultFrom) && f.Wall.Before(faultTo))
				if err := w.WriteFrame(f); err != nil {
					errs = append(errs, err)
				}
			}
			fault.on.Store(false)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if len(errs) == 0 {
				t.Fatal("no error reported during the fault")
			}
			for _, err := range errs {
				if !errors.Is(err, tc.errno) {
					t.Errorf("error %v does not wrap %v", err, tc.errno)
				}
			}
			t.Logf("%d errors, first: %v", len(errs), errs[0])
			end := testWall0.Add(10 * time.Second)
			segs, _ := s.Segments("cam1", time.Time{}, time.Time{})
			if len(segs) != 2 {
				t.Fatalf("segments %+v, want the one before and the one after the fault", segs)
			}
			gaps, _ := s.Gaps("cam1", testWall0, end)
			if len(gaps) != 1 {
				t.Fatalf("gaps %v, want one", gaps)
			}
			g := gaps[0]
			t.Logf("fault %v, gap %v (%v .. %v after start)", faultTo.Sub(faultFrom), g.Duration(), g.Start.Sub(testWall0), g.End.Sub(testWall0))
			// Lost: at most the part in flight before the fault and the
			// wait for the first keyframe (GOP = 1 s) after it.
			if g.Start.Before(faultFrom.Add(-time.Second-time.Second/testFPS)) || g.End.After(faultTo.Add(time.Second)) {
				t.Errorf("gap %v..%v, fault %v..%v", g.Start.Sub(testWall0), g.End.Sub(testWall0), faultFrom.Sub(testWall0), faultTo.Sub(testWall0))
			}
			for _, sg := range segs {
				if sg.Checksum == "" {
					t.Errorf("segment %s left open", sg.Path)
				}
			}
			if _, err := s.ReadSegment(segs[0]); err != nil {
				t.Errorf("read the segment cut by the fault: %v", err)
			}
			// A failed fsync leaves written-but-not-durable bytes: a torn
			// tail that Check reports and recovery trims.
			rc, err := s.Check(false)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "EIO-fsync" {
				if !hasProblem(rc, ProblemTornTail, false) {
					t.Errorf("Check after a failed fsync: %+v", rc.Problems)
				}
			} else if !rc.Consistent() {
				t.Errorf("Check: %+v", rc.Problems)
			}
			s.Close()
			s2 := openTestStore(t, Options{Dir: "/data", FS: fs})
			if rc, err := s2.Check(false); err != nil || !rc.Consistent() {
				t.Fatalf("Check after reopening: %+v %v", rc, err)
			}
			cov, _ := s2.Coverage("cam1", time.Time{}, time.Time{})
			if len(cov) != 2 || !cov[1].End.Equal(end) {
				t.Errorf("coverage after reopening %v", cov)
			}
		})
	}
}

// syncCounter counts fsyncs of segment files.
type syncCounter struct{ n atomic.Int64 }

func (c *syncCounter) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpFileSync && strings.HasSuffix(op.Path, ".mp4") {
		c.n.Add(1)
	}
	return nil
}

func (c *syncCounter) String() string { return "sync counter" }

// TestFsyncPolicy counts segment fsyncs for 10 s of media in one segment:
// FsyncPart syncs the init and every part; FsyncInterval (here longer than
// the recording) only the init and the close.
func TestFsyncPolicy(t *testing.T) {
	m := loadMedia(t)
	for _, tc := range []struct {
		policy FsyncPolicy
		want   int64
	}{{FsyncPart, 1 + 10}, {FsyncInterval, 1 + 1}} {
		c := &syncCounter{}
		s := openTestStore(t, Options{Dir: "/d", FS: errorfs.Wrap(vfs.NewMem(), c), Fsync: tc.policy, FsyncInterval: time.Hour})
		w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(false)})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, m.frames(testWall0, false, 10*testFPS))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := c.n.Load(); got != tc.want {
			t.Errorf("policy %d: %d fsyncs, want %d", tc.policy, got, tc.want)
		}
		cov, _ := s.Coverage("cam1", time.Time{}, time.Time{})
		if len(cov) != 1 || cov[0].Duration() != 10*time.Second {
			t.Errorf("policy %d: coverage %v", tc.policy, cov)
		}
	}
}
