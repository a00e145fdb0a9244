package session

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// wallClock maps the presentation time of a stream to wall-clock time.
//
// A camera that sends RTCP sender reports tells the wall-clock time of its
// frames (gortsplib's PacketNTP); that is preferred, because it is the time
// the picture was taken, not the time it arrived. Until the first sender
// report, or when the camera's clock is clearly wrong, the time is estimated
// from the local clock, anchored at the first frame and advanced by the
// presentation time, so frame spacing stays exact.
type wallClock struct {
	now func() time.Time
	// maxSkew is how far the camera's clock may be from ours before we stop
	// trusting it (cameras with a dead RTC report 1970, or hours off).
	maxSkew time.Duration
	// maxDrift is how far the local estimate may drift from the local clock
	// before it is re-anchored (camera crystals drift ~50 ppm).
	maxDrift time.Duration
	// lagWindow is how long frames may stay more than maxDrift behind the
	// local clock without catching up before that is taken for drift.
	lagWindow time.Duration

	anchored   bool
	anchorWall time.Time
	anchorPTS  time.Duration
	// last is the time returned for the previous frame.
	last time.Time
	// lagSince and lagAt are when frames were first seen more than maxDrift
	// behind the local clock, and by how much (zero: they are not).
	lagSince time.Time
	lagAt    time.Duration
	// badNTP counts frames whose NTP time was rejected.
	badNTP uint64
}

func newWallClock(now func() time.Time) *wallClock {
	return &wallClock{now: now, maxSkew: 10 * time.Second, maxDrift: 2 * time.Second, lagWindow: 10 * time.Second}
}

// wall returns the wall-clock time of a frame with presentation time pts.
//
// A frame may arrive late: when the node was frozen or starved of CPU, the
// frames the camera sent meanwhile wait in the socket's buffer and come in
// a burst once it runs again. They keep the time their presentation time
// gives (the camera's clock runs on while we do not): stamping them with
// their arrival would put a minute of video at the wrong time, out of order
// with what follows, and charge the minute as a gap (found by the chaos
// suite's freeze-60s). Frames that stay behind without catching up are a
// slow camera clock, and re-anchor after lagWindow.
func (c *wallClock) wall(pts time.Duration, ntp time.Time, ntpOK bool) time.Time {
	now := c.now()
	var est time.Time
	if c.anchored {
		est = c.anchorWall.Add(pts - c.anchorPTS)
	}
	if ntpOK {
		d := ntp.Sub(now)
		trusted := d < c.maxSkew && d > -c.maxSkew
		if !trusted && c.anchored && d < 0 {
			// Late, and where the frames before it say it belongs.
			off := ntp.Sub(est)
			trusted = off < c.maxDrift && off > -c.maxDrift
		}
		if trusted {
			c.anchored, c.anchorWall, c.anchorPTS = true, ntp, pts
			c.lagSince = time.Time{}
			return c.stamp(ntp)
		}
		c.badNTP++
	}
	if !c.anchored {
		return c.anchor(now, pts)
	}
	d := est.Sub(now)
	switch {
	case d > c.maxDrift, est.Before(c.last.Add(-c.maxDrift)):
		// Ahead of the local clock, or behind the frame before: the
		// presentation time jumped.
		return c.anchor(now, pts)
	case d < -c.maxDrift:
		lag := -d
		if c.lagSince.IsZero() {
			c.lagSince, c.lagAt = now, lag
			return c.stamp(est)
		}
		if now.Sub(c.lagSince) >= c.lagWindow {
			// Catching up drains the buffer much faster than the clock
			// runs; a lag that shrank by less than a tenth of the window
			// is a camera clock that runs slow.
			if c.lagAt-lag < c.lagWindow/10 {
				return c.anchor(now, pts)
			}
			c.lagSince, c.lagAt = now, lag
		}
		return c.stamp(est)
	default:
		c.lagSince = time.Time{}
		return c.stamp(est)
	}
}

func (c *wallClock) anchor(now time.Time, pts time.Duration) time.Time {
	c.anchored, c.anchorWall, c.anchorPTS = true, now, pts
	c.lagSince = time.Time{}
	return c.stamp(now)
}

func (c *wallClock) stamp(t time.Time) time.Time {
	c.last = t
	return t
}

// ptsDuration converts a timestamp in clock-rate units to a duration without
// overflowing for long-running streams.
func ptsDuration(pts int64, clockRate int) time.Duration {
	cr := int64(clockRate)
	return time.Duration(pts/cr)*time.Second + time.Duration((pts%cr)*int64(time.Second)/cr)
}

// senderReports keeps the newest RTCP sender report of each RTP source of
// one media, and maps RTP timestamps to the wall-clock time they carry.
//
// gortsplib v4.16.2 reads the NTP fraction as nanoseconds instead of 1/2^32
// s (RFC 3550 §4), which puts frames of real cameras up to a second off, and
// ignores reports that arrive before the first RTP packet; so the engine
// reads the reports itself.
type senderReports struct {
	mu     sync.Mutex
	bySSRC map[uint32]senderReport
}

type senderReport struct {
	ntp time.Time
	rtp uint32
}

func (s *senderReports) observe(p rtcp.Packet) {
	sr, ok := p.(*rtcp.SenderReport)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySSRC == nil {
		s.bySSRC = make(map[uint32]senderReport)
	}
	s.bySSRC[sr.SSRC] = senderReport{ntp: ntpTime(sr.NTPTime), rtp: sr.RTPTime}
}

// wall returns the wall-clock time of an RTP timestamp of source ssrc, once
// a sender report of that source has been seen.
func (s *senderReports) wall(ssrc, ts uint32, clockRate int) (time.Time, bool) {
	s.mu.Lock()
	sr, ok := s.bySSRC[ssrc]
	s.mu.Unlock()
	if !ok || clockRate <= 0 {
		return time.Time{}, false
	}
	// The difference is signed: a frame may predate the report.
	d := int64(int32(ts - sr.rtp))
	return sr.ntp.Add(ptsDuration(d, clockRate)), true
}

// ntpTime converts a 64-bit NTP timestamp (seconds since 1900 in the high
// 32 bits, fraction of a second in units of 1/2^32 in the low 32 bits).
func ntpTime(v uint64) time.Time {
	const unixEpochInNTP = 2208988800
	secs := int64(v>>32) - unixEpochInNTP
	nanos := int64(((v & 0xffffffff) * 1e9) >> 32)
	return time.Unix(secs, nanos).UTC()
}
