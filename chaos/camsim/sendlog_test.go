package camsim

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// TestSendLog records a camera with a real RTSP client through a pause and
// a reader that leaves, and checks the send log against what arrived:
// every frame number generated is in exactly one range, every frame
// received is in a sent range (its IDR frames where the log says), the
// paused frames are skips, and a second server on the same directory
// continues the numbering.
func TestSendLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Cameras = 1
	cfg.SendLogDir = dir
	s := startServer(t, cfg)
	time.Sleep(300 * time.Millisecond) // frames with no reader
	r, err := dial(t, s.URL(0), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s.Camera(0).Pause()
	time.Sleep(600 * time.Millisecond)
	s.Camera(0).Resume()
	time.Sleep(1200 * time.Millisecond)
	r.client.Close()
	time.Sleep(300 * time.Millisecond)
	s.Close()
	_, aus := r.snapshot()

	es, err := ReadSendLogFile(SendLogPath(dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	type fate struct {
		sent, idr bool
		why       string
		at        time.Time
	}
	fates := map[uint64]fate{}
	var next uint64
	readers := []int{}
	for _, e := range es {
		switch e.Ev {
		case EvReaders:
			readers = append(readers, e.N)
		case EvStart:
			if e.FPS != cfg.FPS || e.GOP != cfg.GOP {
				t.Errorf("start event %+v", e)
			}
		}
		if !e.IsRange() {
			continue
		}
		if e.First != next {
			t.Fatalf("range %d..%d follows frame %d: a hole or an overlap in the numbering", e.First, e.Last, next-1)
		}
		next = e.Last + 1
		for n := e.First; n <= e.Last; n++ {
			idr := e.IDR != nil && n >= *e.IDR && (n-*e.IDR)%uint64(cfg.GOP) == 0
			fates[n] = fate{sent: e.Ev == EvSent, idr: idr, why: e.Why, at: e.FrameTime(n)}
		}
	}
	if len(fates) < 3*cfg.FPS {
		t.Fatalf("%d frames logged over ~4 s", len(fates))
	}
	if len(readers) < 2 || readers[0] != 1 || readers[len(readers)-1] != 0 {
		t.Errorf("readers events %v, want 1 ... 0", readers)
	}
	if f := fates[0]; f.sent || f.why != SkipNoReader {
		t.Errorf("frame 0 (before any reader): %+v, want a no-reader skip", f)
	}
	paused := 0
	for _, f := range fates {
		if f.why == SkipPaused {
			paused++
		}
	}
	if paused < cfg.FPS/2 || paused > cfg.FPS {
		t.Errorf("%d frames logged as paused over a 0.6 s pause", paused)
	}
	if len(aus) < 2*cfg.FPS {
		t.Fatalf("only %d access units received", len(aus))
	}
	for _, au := range aus {
		f, ok := fates[au.stamp.Frame]
		if !ok || !f.sent {
			t.Fatalf("frame %d arrived but the log says %+v", au.stamp.Frame, f)
		}
		if f.idr != au.idr {
			t.Errorf("frame %d: IDR %v, the log says %v", au.stamp.Frame, au.idr, f.idr)
		}
		if d := f.at.Sub(au.stamp.Time); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("frame %d: logged at %v, stamped %v", au.stamp.Frame, f.at, au.stamp.Time)
		}
	}

	// A second camera process on the same directory numbers on.
	s2 := startServer(t, cfg)
	time.Sleep(200 * time.Millisecond)
	s2.Close()
	es2, err := ReadSendLogFile(SendLogPath(dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	var firstOfSecond *SendLogEntry
	for i := len(es); i < len(es2); i++ {
		if es2[i].IsRange() {
			firstOfSecond = &es2[i]
			break
		}
	}
	if firstOfSecond == nil || firstOfSecond.First != next {
		t.Fatalf("second server's first range %+v, want it to start at frame %d", firstOfSecond, next)
	}
}

func TestReadSendLogErrors(t *testing.T) {
	good := `{"ev":"start","cam":0,"t0":1,"fps":25,"gop":50}
{"ev":"sent","cam":0,"first":0,"last":24,"t0":1,"t1":960000001,"idr":0}
{"ev":"skip","cam":0,"first":25,"last":30,"t0":1000000001,"t1":1200000001,"why":"behind"}
`
	es, err := ReadSendLog(strings.NewReader(good + `{"ev":"sent","cam":0,"fir`))
	if err != nil || len(es) != 3 {
		t.Fatalf("a torn last line: %d entries, %v; want 3 and no error", len(es), err)
	}
	if got := es[1].FrameTime(12); got.UnixNano() != 480000001 {
		t.Errorf("FrameTime(12) = %d", got.UnixNano())
	}
	for name, bad := range map[string]string{
		"not json":          "{\n",
		"unknown event":     `{"ev":"boom","cam":0,"t0":1}` + "\n",
		"unknown field":     `{"ev":"stop","cam":0,"t0":1,"x":2}` + "\n",
		"backwards range":   `{"ev":"sent","cam":0,"first":5,"last":4,"t0":1,"t1":2}` + "\n",
		"numbers go back":   `{"ev":"sent","cam":0,"first":31,"last":40,"t0":1,"t1":2}` + "\n" + `{"ev":"sent","cam":0,"first":30,"last":40,"t0":3,"t1":4}` + "\n",
		"idr outside range": `{"ev":"sent","cam":0,"first":1,"last":4,"t0":1,"t1":2,"idr":9}` + "\n",
		"skip, no reason":   `{"ev":"skip","cam":0,"first":1,"last":4,"t0":1,"t1":2}` + "\n",
		"start without fps": `{"ev":"start","cam":0,"t0":1}` + "\n",
		"line too long":     `{"ev":"stop","t0":1` + strings.Repeat(" ", 5000) + "}\n",
	} {
		if _, err := ReadSendLog(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: err %v, want one naming the line", name, err)
		}
	}
	if _, err := ReadSendLogFile(SendLogPath(t.TempDir(), 3)); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
