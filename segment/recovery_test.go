package segment

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func hasProblem(rep CheckReport, kind ProblemKind, repaired bool) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && p.Repaired == repaired {
			return true
		}
	}
	return false
}

// TestRecovery simulates a crashed writer (open entry, torn tail), a file
// without entry, a garbage file, a vanished file and a corrupted file, and
// checks that Open repairs each and Check then reports consistent.
func TestRecovery(t *testing.T) {
	m := loadMedia(t)
	dir := t.TempDir()
	s := openTestStore(t, Options{Dir: dir})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 8*testFPS+10)) // 2 closed segments + an open one of 2.4 s
	segs, _ := s.Segments("cam1", time.Time{}, time.Time{})
	if len(segs) != 3 || segs[2].Checksum != "" {
		t.Fatalf("want 2 closed + 1 open segment, got %+v", segs)
	}
	openEnd := segs[2].End
	s.Close() // crash: the writer is never closed
	abs := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	// torn tail on the open segment: half a part of garbage
	f, _ := os.OpenFile(abs(segs[2].Path), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(bytes.Repeat([]byte{0, 0, 0x10, 0, 'm', 'o', 'o', 'f'}, 20))
	f.Close()
	// a copy of segment 0 under another start time, unindexed
	data0, _ := os.ReadFile(abs(segs[0].Path))
	lateStart := testWall0.Add(time.Hour)
	copyRel := segmentRelPath("cam1", lateStart, ClassArchive, OriginLive, "local")
	os.MkdirAll(filepath.Dir(abs(copyRel)), 0o755)
	os.WriteFile(abs(copyRel), data0, 0o644)
	// garbage with a valid name
	junkRel := segmentRelPath("cam1", testWall0.Add(2*time.Hour), ClassArchive, OriginLive, "local")
	os.MkdirAll(filepath.Dir(abs(junkRel)), 0o755)
	os.WriteFile(abs(junkRel), []byte("not an mp4"), 0o644)
	// segment 1 vanishes
	os.Remove(abs(segs[1].Path))

	s2 := openTestStore(t, Options{Dir: dir})
	rep := s2.Recovery()
	for _, k := range []ProblemKind{ProblemOpenSegment, ProblemUnindexedFile, ProblemMissingFile} {
		if !hasProblem(rep, k, true) {
			t.Errorf("recovery did not repair %s: %v", k, rep.Problems)
		}
	}
	if len(rep.Dropped) != 1 || rep.Dropped[0].Path != segs[1].Path {
		t.Errorf("dropped %+v, want segment 1", rep.Dropped)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "cam1", filepath.Base(junkRel))); err != nil {
		t.Errorf("garbage file not quarantined: %v", err)
	}
	after, _ := s2.Segments("cam1", time.Time{}, time.Time{})
	if len(after) != 3 {
		t.Fatalf("after recovery: %+v", after)
	}
	if !after[1].End.Equal(openEnd) || after[1].Checksum == "" || after[1].Checksum != fileSHA(t, abs(after[1].Path)) {
		t.Errorf("recovered open segment %+v, want end %v with the file's checksum", after[1], openEnd)
	}
	if !after[2].Start.Equal(lateStart) || after[2].End.Sub(after[2].Start) != 3*time.Second {
		t.Errorf("indexed copy %+v", after[2])
	}
	gaps, _ := s2.Gaps("cam1", testWall0, openEnd)
	if len(gaps) != 1 || !gaps[0].Start.Equal(segs[1].Start) || !gaps[0].End.Equal(segs[1].End) {
		t.Errorf("gaps %v, want the dropped segment's range", gaps)
	}
	if rc, err := s2.Check(false); err != nil || !rc.Consistent() {
		t.Fatalf("Check after recovery: %+v %v", rc, err)
	}

	// A flipped byte: Check finds it, a read quarantines it.
	data, _ := os.ReadFile(abs(after[0].Path))
	data[len(data)/2] ^= 1
	os.WriteFile(abs(after[0].Path), data, 0o644)
	if rc, _ := s2.Check(false); rc.Consistent() || !hasProblem(rc, ProblemChecksumMismatch, false) {
		t.Errorf("Check missed a corrupt file: %+v", rc)
	}
	if _, err := s2.ReadSegment(after[0]); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("ReadSegment of a corrupt file: %v", err)
	}
	if _, err := s2.Export(context.Background(), "cam1", after[0].Start, after[0].End, &bytes.Buffer{}); !errors.Is(err, ErrNoCoverage) {
		t.Errorf("export of the quarantined range: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "cam1", filepath.Base(after[0].Path))); err != nil {
		t.Errorf("corrupt file not quarantined: %v", err)
	}
	if rc, err := s2.Check(false); err != nil || !rc.Consistent() {
		t.Fatalf("Check after quarantine: %+v %v", rc, err)
	}
}

// TestCrash kills the writer at random moments on a crash-simulating FS (20
// iterations, random share of unsynced data surviving) and checks that the
// recovered store is consistent and lost at most the part in flight.
func TestCrash(t *testing.T) {
	m := loadMedia(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	frames := m.frames(testWall0, true, 20*testFPS)
	const part = time.Second
	for iter := 0; iter < 20; iter++ {
		fs := vfs.NewCrashableMem()
		s, err := Open(Options{Dir: "/data", FS: fs, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 4 * time.Second, PartDuration: part})
		if err != nil {
			t.Fatal(err)
		}
		k := 1 + rng.IntN(len(frames)-1)
		writeAll(t, w, frames[:k])
		durable, _ := s.Coverage("cam1", time.Time{}, time.Time{})
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		s.Close()

		s2, err := Open(Options{Dir: "/data", FS: clone, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("iter %d: open after crash: %v", iter, err)
		}
		rc, err := s2.Check(false)
		if err != nil || !rc.Consistent() {
			t.Fatalf("iter %d: Check after recovery: %+v %v", iter, rc, err)
		}
		cov, _ := s2.Coverage("cam1", time.Time{}, time.Time{})
		lastWall := frames[k-1].Wall
		if len(durable) > 0 {
			d := durable[len(durable)-1]
			if len(cov) != 1 || !cov[0].Start.Equal(testWall0) || cov[0].End.Before(d.End) {
				t.Fatalf("iter %d (k=%d): recovered coverage %v does not hold the durable %v", iter, k, cov, durable)
			}
			if lost := lastWall.Sub(cov[0].End); lost > part+2*time.Second/testFPS {
				t.Fatalf("iter %d: lost %v (> one part)", iter, lost)
			}
		} else if lastWall.Sub(testWall0) > part+2*time.Second/testFPS {
			t.Fatalf("iter %d: nothing durable after %v of frames", iter, lastWall.Sub(testWall0))
		}
		for _, sg := range mustSegments(t, s2) {
			if _, err := s2.ReadSegment(sg); err != nil {
				t.Fatalf("iter %d: read %s: %v", iter, sg.Path, err)
			}
			if !strings.HasPrefix(sg.Checksum, "sha256:") {
				t.Fatalf("iter %d: segment %s still open after recovery", iter, sg.Path)
			}
		}
		s2.Close()
	}
}

func mustSegments(t *testing.T, s *Store) []SegmentInfo {
	t.Helper()
	segs, err := s.Segments("cam1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// TestImportSegment copies a segment between two stores as backfill does:
// verified, written once, indexed as backfill; a bad checksum changes
// nothing.
func TestImportSegment(t *testing.T) {
	src := openTestStore(t, Options{Node: "peer"})
	seg := writeLPCMStore(t, src)
	raw, err := src.ReadSegment(seg)
	if err != nil {
		t.Fatal(err)
	}
	dst := openTestStore(t, Options{Node: "home"})
	bad := append([]byte(nil), raw...)
	bad[len(bad)-1] ^= 1
	if _, err := dst.ImportSegment(seg, ClassArchive, bad); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("import of corrupt bytes: %v", err)
	}
	got, err := dst.ImportSegment(seg, ClassArchive, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != OriginBackfill || got.Node != "peer" || got.Checksum != seg.Checksum || got.Interval() != seg.Interval() {
		t.Fatalf("imported %+v from %+v", got, seg)
	}
	if _, err := dst.ImportSegment(seg, ClassArchive, raw); err == nil {
		t.Fatal("second import overwrote")
	}
	if rc, err := dst.Check(false); err != nil || !rc.Consistent() || rc.Entries != 1 {
		t.Fatalf("Check: %+v %v", rc, err)
	}
	if b, err := dst.ReadSegment(got); err != nil || !bytes.Equal(b, raw) {
		t.Fatalf("read back: %v", err)
	}
}

func writeLPCMStore(t *testing.T, s *Store) SegmentInfo {
	t.Helper()
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: []Track{{ClockRate: 8000, Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 100; i++ {
		if err := w.WriteFrame(Frame{PTS: i * 160, DTS: i * 160, Wall: testWall0.Add(time.Duration(i) * 20 * time.Millisecond), Random: true, Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return mustSegments(t, s)[0]
}
