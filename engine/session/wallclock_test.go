package session

import (
	"testing"
	"time"
)

// fakeNow is a settable clock.
type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

var clockStart = time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)

// TestWallClockKeepsLateFramesInPlace: frames that waited in the socket's
// buffer while the node was frozen for 60 s arrive in a burst after the
// thaw; each keeps the time the camera took it, in order, and the frames
// after the burst follow on without a jump.
func TestWallClockKeepsLateFramesInPlace(t *testing.T) {
	clk := &fakeNow{t: clockStart}
	c := newWallClock(clk.now)
	const frame = 40 * time.Millisecond
	var pts time.Duration
	for i := 0; i < 250; i++ { // 10 s live
		if got, want := c.wall(pts, time.Time{}, false), clockStart.Add(pts); !got.Equal(want) {
			t.Fatalf("live frame %d at %s, want %s", i, got, want)
		}
		pts += frame
		clk.t = clk.t.Add(frame)
	}
	clk.t = clk.t.Add(60 * time.Second) // frozen: the camera runs on
	var prev time.Time
	for i := 0; i < 1500+250; i++ { // the buffered minute, then 10 s live again
		got := c.wall(pts, time.Time{}, false)
		if want := clockStart.Add(pts); !got.Equal(want) {
			t.Fatalf("frame %d after the thaw at %s, want %s (%s off)", i, got, want, got.Sub(want))
		}
		if !got.After(prev) {
			t.Fatalf("frame %d at %s, not after the one before (%s)", i, got, prev)
		}
		prev = got
		pts += frame
		if i < 1500 {
			clk.t = clk.t.Add(time.Millisecond) // the buffer drains fast
		} else {
			clk.t = clk.t.Add(frame)
		}
	}
}

// TestWallClockLateCameraReport: a sender report's time that is a minute
// old, but where the frames before it say the frame belongs, is the
// camera's time, not a wrong clock.
func TestWallClockLateCameraReport(t *testing.T) {
	clk := &fakeNow{t: clockStart}
	c := newWallClock(clk.now)
	camera := clockStart.Add(-300 * time.Millisecond) // the camera's clock, 0.3 s behind ours
	c.wall(0, camera, true)
	clk.t = clk.t.Add(70 * time.Second)
	pts := 10 * time.Second
	if got, want := c.wall(pts, camera.Add(pts), true), camera.Add(pts); !got.Equal(want) {
		t.Errorf("late frame at %s, want the camera's %s", got, want)
	}
	if c.badNTP != 0 {
		t.Errorf("%d camera times rejected", c.badNTP)
	}
	// A report an hour off is still refused.
	if got := c.wall(pts+time.Second, clockStart.Add(-time.Hour), true); got.Before(clockStart) {
		t.Errorf("frame with a report an hour off at %s", got)
	}
	if c.badNTP != 1 {
		t.Errorf("badNTP %d, want 1", c.badNTP)
	}
}

// TestWallClockSlowCameraReanchors: a camera whose clock runs slow falls
// behind ours and stays behind; after the lag window its frames are
// stamped by our clock again, not left seconds in the past.
func TestWallClockSlowCameraReanchors(t *testing.T) {
	clk := &fakeNow{t: clockStart}
	c := newWallClock(clk.now)
	c.wall(0, time.Time{}, false)
	// 3 s behind at once (as if a long slow drift), then running at our rate.
	var got time.Time
	for i := 1; i <= 500; i++ { // 20 s
		clk.t = clockStart.Add(3*time.Second + time.Duration(i)*40*time.Millisecond)
		got = c.wall(time.Duration(i)*40*time.Millisecond, time.Time{}, false)
	}
	if lag := clk.t.Sub(got); lag > c.maxDrift {
		t.Errorf("after 20 s the frames are %s behind the clock, want at most %s", lag, c.maxDrift)
	}
}

// TestWallClockJumps: a presentation time that jumps back, or ahead of the
// local clock, re-anchors at once.
func TestWallClockJumps(t *testing.T) {
	clk := &fakeNow{t: clockStart}
	c := newWallClock(clk.now)
	c.wall(0, time.Time{}, false)
	clk.t = clk.t.Add(20 * time.Second)
	c.wall(20*time.Second, time.Time{}, false)
	clk.t = clk.t.Add(40 * time.Millisecond)
	if got := c.wall(5*time.Second, time.Time{}, false); !got.Equal(clk.t) {
		t.Errorf("after a jump back of 15 s the frame is at %s, want now (%s)", got, clk.t)
	}
	clk.t = clk.t.Add(40 * time.Millisecond)
	if got := c.wall(time.Hour, time.Time{}, false); !got.Equal(clk.t) {
		t.Errorf("after a jump ahead of an hour the frame is at %s, want now (%s)", got, clk.t)
	}
}
