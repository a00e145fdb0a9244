package segment

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recordTenSeconds records 10 s of video with audio (GOP 1 s) as stream
// cam1 from testWall0, in segments of 3 s.
func recordTenSeconds(t *testing.T) *Store {
	t.Helper()
	m := loadMedia(t)
	s := openTestStore(t, Options{})
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, m.frames(testWall0, true, 10*testFPS))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExport cuts clips across segment boundaries and checks that ffprobe
// accepts them with the expected duration, that a clip starts at the
// keyframe at or before from, and that an uncovered range is ErrNoCoverage.
func TestExport(t *testing.T) {
	s := recordTenSeconds(t)
	var err error
	dir := t.TempDir()
	for i, tc := range []struct {
		from, to  time.Duration
		wantStart time.Duration // keyframe at or before from (GOP = 1 s)
	}{
		{0, 10 * time.Second, 0},
		{1500 * time.Millisecond, 7200 * time.Millisecond, time.Second}, // across two boundaries
		{2900 * time.Millisecond, 3100 * time.Millisecond, 2 * time.Second},
		{-5 * time.Second, 2 * time.Second, 0}, // starts before the recording
	} {
		path := filepath.Join(dir, "clip.mp4")
		f, _ := os.Create(path)
		info, err := s.Export(context.Background(), "cam1", testWall0.Add(tc.from), testWall0.Add(tc.to), f)
		f.Close()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !info.Start.Equal(testWall0.Add(tc.wantStart)) {
			t.Errorf("case %d: clip starts at %v, want %v", i, info.Start.Sub(testWall0), tc.wantStart)
		}
		pr := ffprobe(t, path)
		if pr.errors != "" {
			t.Errorf("case %d: ffprobe: %s", i, pr.errors)
		}
		want := info.End.Sub(info.Start).Seconds()
		if exp := (tc.to - tc.wantStart).Seconds(); tc.to <= 10*time.Second && math.Abs(want-exp) > 1.0/testFPS+1e-6 {
			t.Errorf("case %d: clip covers %.3f s, want %.3f", i, want, exp)
		}
		if math.Abs(pr.duration-want) > 0.05 {
			t.Errorf("case %d: ffprobe duration %.3f s, clip %.3f s", i, pr.duration, want)
		}
		if len(pr.streams) != 2 {
			t.Errorf("case %d: %d streams", i, len(pr.streams))
		}
	}
	_, err = s.Export(context.Background(), "cam1", testWall0.Add(time.Hour), testWall0.Add(2*time.Hour), &bytes.Buffer{})
	if !errors.Is(err, ErrNoCoverage) {
		t.Fatalf("export of an empty range: %v", err)
	}
	if _, err := s.Export(context.Background(), "nope", testWall0, testWall0.Add(time.Second), &bytes.Buffer{}); !errors.Is(err, ErrNoCoverage) {
		t.Fatalf("export of an unknown stream: %v", err)
	}
}

// TestExportMemoryBounded exports a clip of many segments whose payloads
// are large (about 6 Mbit/s) and checks that while the file is written the
// live heap holds no more than a few segments' worth of bytes and at most
// two segment files are open: export memory does not grow with the bytes
// of the clip. The clip must still be whole: ffprobe-clean, with the
// exact duration.
func TestExportMemoryBounded(t *testing.T) {
	m := loadMedia(t)
	s := openTestStore(t, Options{Fsync: FsyncInterval, FsyncInterval: time.Hour})
	const (
		secs     = 40
		segDur   = 2 * time.Second
		frameLen = 30000 // bytes per video frame, with a filler NAL unit
	)
	w, err := s.NewWriter(WriterConfig{Stream: "cam1", Tracks: m.tracks(true), SegmentDuration: segDur})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range m.frames(testWall0, true, secs*testFPS) {
		if f.Track == 0 {
			f.Payload = withFiller(f.Payload, frameLen)
		}
		if err := w.WriteFrame(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := s.Segments("cam1", testWall0, testWall0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, si := range segs {
		total += si.Bytes
	}
	if len(segs) < secs/int(segDur/time.Second)-1 || total < secs*testFPS*frameLen {
		t.Fatalf("%d segments, %d bytes recorded", len(segs), total)
	}

	path := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds0 := openFDs(t)
	base := liveHeap()
	mw := &measuringWriter{w: f, every: total / 8}
	info, err := s.Export(context.Background(), "cam1", testWall0, testWall0.Add(secs*time.Second), mw)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if info.Segments != len(segs) {
		t.Errorf("clip cut from %d segments, want %d", info.Segments, len(segs))
	}
	// A bound well below the clip's bytes (≈ 30 MB) and above what the
	// sample tables (≈ 3000 samples) and one segment (≈ 1.5 MB) take.
	const bound = 8 << 20
	t.Logf("%d segments, %d MB clip: live heap +%d kB, %d more files open", len(segs), total>>20, (int64(mw.maxHeap)-int64(base))>>10, mw.maxFDs-fds0)
	if grow := int64(mw.maxHeap) - int64(base); mw.checks == 0 || grow > bound {
		t.Errorf("live heap grew by %d MB while writing a %d MB clip (%d checks), want at most %d MB",
			grow>>20, total>>20, mw.checks, bound>>20)
	}
	if fds0 >= 0 && mw.maxFDs-fds0 > 2 {
		t.Errorf("%d more files open while writing, want at most 2 segment files", mw.maxFDs-fds0)
	}
	pr := ffprobe(t, path)
	if pr.errors != "" {
		t.Errorf("ffprobe: %s", pr.errors)
	}
	if !info.Start.Equal(testWall0) || !info.End.Equal(testWall0.Add(secs*time.Second)) {
		t.Errorf("clip [%v, %v), want [0, %ds)", info.Start.Sub(testWall0), info.End.Sub(testWall0), secs)
	}
	if math.Abs(pr.duration-secs) > 0.05 {
		t.Errorf("ffprobe duration %.3f s, want %d", pr.duration, secs)
	}
}

// withFiller returns an AVCC access unit grown to n bytes by a filler-data
// NAL unit (type 12), which decoders skip.
func withFiller(au []byte, n int) []byte {
	fill := n - len(au) - 4
	if fill < 2 {
		return au
	}
	out := make([]byte, len(au), n)
	copy(out, au)
	out = append(out, byte(fill>>24), byte(fill>>16), byte(fill>>8), byte(fill), 12)
	for range fill - 2 {
		out = append(out, 0xff)
	}
	return append(out, 0x80)
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// openFDs counts the process's open files; -1 where /proc is missing.
func openFDs(t *testing.T) int {
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Logf("no fd count: %v", err)
		return -1
	}
	return len(des)
}

// measuringWriter records the live heap and the open files at the first
// write and after every `every` bytes.
type measuringWriter struct {
	w              io.Writer
	every, n, next int64
	maxHeap        uint64
	maxFDs, checks int
}

func (m *measuringWriter) Write(p []byte) (int, error) {
	if m.n >= m.next {
		m.next = m.n + m.every
		m.checks++
		m.maxHeap = max(m.maxHeap, liveHeap())
		if des, err := os.ReadDir("/proc/self/fd"); err == nil {
			m.maxFDs = max(m.maxFDs, len(des))
		}
	}
	m.n += int64(len(p))
	return m.w.Write(p)
}

// TestExportRange checks what HTTP range requests rely on: Size is the
// length of the file Write writes, the entity tag is the same for the same
// clip and differs for another, every byte range WriteRange writes equals
// that slice of the whole file, clones write the same file concurrently,
// and payloads before the range are not read.
func TestExportRange(t *testing.T) {
	m := loadMedia(t)
	s := recordTenSeconds(t)
	ctx := context.Background()
	from, to := testWall0.Add(500*time.Millisecond), testWall0.Add(9*time.Second)
	cut := func() *Cut {
		c, err := s.CutClip(ctx, "cam1", from, to)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := cut()
	size, etag, err := c.Size()
	if err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	if err := c.Write(ctx, &whole); err != nil {
		t.Fatal(err)
	}
	if int64(whole.Len()) != size {
		t.Fatalf("Size %d, Write wrote %d bytes", size, whole.Len())
	}
	// The file holds the recorded frames of [0 s, 9 s), every track in
	// order (the muxer is handed the payloads track by track): each packet
	// ffprobe reads is the frame written, by size and MD5.
	clipPath := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(clipPath, whole.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,size,data_hash",
		"-show_data_hash", "MD5", "-of", "csv=p=0", clipPath).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	want := map[string][]string{}
	for _, f := range m.frames(testWall0, true, 10*testFPS) {
		if !f.Wall.Before(to) {
			continue
		}
		sum := md5.Sum(f.Payload)
		want[strconv.Itoa(f.Track)] = append(want[strconv.Itoa(f.Track)], fmt.Sprintf("%d,MD5:%x", len(f.Payload), sum))
	}
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		track, rest, _ := strings.Cut(line, ",")
		got[track] = append(got[track], rest)
	}
	for track, w := range want {
		g := got[track]
		if track == "1" && len(g) > 0 && len(w) > 1 && g[0] == w[1] {
			w = w[1:] // the audio frame before the first video frame is not recorded
		}
		if len(g) != len(w) {
			t.Errorf("track %s: %d packets, want %d", track, len(g), len(w))
			continue
		}
		for k := range g {
			if g[k] != w[k] {
				t.Fatalf("track %s packet %d: %s, want the frame recorded (%s)", track, k, g[k], w[k])
			}
		}
	}
	if _, e2, _ := cut().Size(); e2 != etag {
		t.Errorf("the same clip cut twice: entity tags %s and %s", etag, e2)
	}
	if c2, err := s.CutClip(ctx, "cam1", from, to.Add(time.Second)); err != nil {
		t.Fatal(err)
	} else if _, e2, _ := c2.Size(); e2 == etag {
		t.Errorf("a longer clip has the same entity tag %s", etag)
	}
	// Clones of a cut write the same file at the same time (a cache of
	// cuts serves concurrent requests from clones).
	clones := make([]bytes.Buffer, 3)
	errs := make(chan error, len(clones))
	tmpl := c.Clone()
	for i := range clones {
		d := tmpl.Clone()
		go func() { errs <- d.WriteRange(ctx, &clones[i], 0, size) }()
	}
	for range clones {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range clones {
		if !bytes.Equal(clones[i].Bytes(), whole.Bytes()) {
			t.Errorf("clone %d wrote %d bytes unlike the cut's %d", i, clones[i].Len(), whole.Len())
		}
	}
	if n, e, _ := tmpl.Size(); n != size || e != etag || tmpl.Samples() != c.Samples() {
		t.Errorf("clone: %d bytes, tag %s, %d samples; cut: %d, %s, %d", n, e, tmpl.Samples(), size, etag, c.Samples())
	}
	header := c.header
	ranges := [][2]int64{
		{0, size}, {0, 1}, {size - 1, 1}, {0, header}, {header - 3, 10}, {header, 4096},
		{size / 2, 1}, {size / 3, size / 3}, {size - 70000, 70000}, {1, size - 2}, {size, 0},
	}
	for _, r := range ranges {
		var b bytes.Buffer
		if err := c.WriteRange(ctx, &b, r[0], r[1]); err != nil {
			t.Fatalf("range %d+%d: %v", r[0], r[1], err)
		}
		if !bytes.Equal(b.Bytes(), whole.Bytes()[r[0]:r[0]+r[1]]) {
			t.Errorf("range %d+%d: %d bytes differ from the file's", r[0], r[1], b.Len())
		}
	}
	for _, r := range [][2]int64{{-1, 2}, {0, size + 1}, {size, 1}, {5, -1}} {
		if err := c.WriteRange(ctx, io.Discard, r[0], r[1]); err == nil {
			t.Errorf("range %d+%d of %d bytes: no error", r[0], r[1], size)
		}
	}

	// Remove the first segment's file: a range in the last segment does
	// not read it, a range at the start fails.
	if err := os.Remove(c.paths[0]); err != nil {
		t.Fatal(err)
	}
	var tail bytes.Buffer
	if err := c.WriteRange(ctx, &tail, size-70000, 70000); err != nil {
		t.Errorf("the last 70000 bytes with the first segment's file gone: %v (payloads before the range were read)", err)
	} else if !bytes.Equal(tail.Bytes(), whole.Bytes()[size-70000:]) {
		t.Errorf("the last 70000 bytes changed when the first segment's file went")
	}
	if err := c.WriteRange(ctx, io.Discard, header, 4096); err == nil {
		t.Errorf("the first payload bytes with the first segment's file gone: no error")
	}
}
