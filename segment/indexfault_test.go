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

// indexFault fails writes and syncs of the index's files while on.
type indexFault struct{ on atomic.Bool }

func (f *indexFault) MaybeError(op errorfs.Op) error {
	if f.on.Load() && strings.Contains(op.Path, "/index/") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync) {
		return syscall.EIO
	}
	return nil
}

func (f *indexFault) String() string { return "index fault" }

// TestIndexWriteFault: when the index's WAL cannot be written, Pebble
// declares a fatal error. The writer must report it (Pebble's commit
// would otherwise return nil for a write that never reached its log), the
// store must refuse further index writes at once and tell its owner, and a
// restart must recover every segment made durable before the fault.
func TestIndexWriteFault(t *testing.T) {
	m := loadMedia(t)
	mem := vfs.NewMem()
	fault := &indexFault{}
	var told atomic.Int32
	s, err := Open(Options{Dir: "/data", FS: errorfs.Wrap(mem, fault), Logger: quietLogger(),
		OnIndexFailure: func(error) { told.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	frames := m.frames(testWall0, true, 6*testFPS)
	var errs []error
	for i, f := range frames {
		fault.on.Store(i >= 3*testFPS)
		if err := w.WriteFrame(f); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		t.Fatal("index writes failed and the writer reported nothing")
	}
	var fe *PebbleFatalError
	if !errors.As(errs[0], &fe) {
		t.Errorf("first error %v is not a *PebbleFatalError", errs[0])
	}
	t.Logf("%d errors, first: %v", len(errs), errs[0])
	if n := told.Load(); n != 1 {
		t.Errorf("OnIndexFailure called %d times, want 1", n)
	}
	if s.IndexErr() == nil {
		t.Error("IndexErr is nil after a fatal index error")
	}
	// Later writes fail at once, even with the disk healthy again.
	fault.on.Store(false)
	start := time.Now()
	if err := s.AddSourceOutage("cam1", Interval{Start: testWall0, End: testWall0.Add(time.Second)}); !errors.As(err, &fe) {
		t.Errorf("write after the failure: %v, want the index's fatal error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("write after the failure took %v", d)
	}
	_ = s.Close()

	// Restart: the segment closed before the fault is there, checked.
	s2, err := Open(Options{Dir: "/data", FS: mem, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	segs, err := s2.Segments("cam1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var covered time.Duration
	for _, sg := range segs {
		covered += sg.End.Sub(sg.Start)
	}
	t.Logf("after restart: %d segments, %v covered, recovery: %d problems", len(segs), covered, len(s2.Recovery().Problems))
	if covered < 2*time.Second-time.Second/testFPS {
		t.Errorf("after restart %v covered, want the first segment (2 s) at least", covered)
	}
	rep, err := s2.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("index inconsistent after restart: %+v", rep.Problems)
	}
}
