package engine

import "time"

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

	anchored   bool
	anchorWall time.Time
	anchorPTS  time.Duration
	// badNTP counts frames whose NTP time was rejected.
	badNTP uint64
}

func newWallClock(now func() time.Time) *wallClock {
	return &wallClock{now: now, maxSkew: 10 * time.Second, maxDrift: 2 * time.Second}
}

// wall returns the wall-clock time of a frame with presentation time pts.
func (c *wallClock) wall(pts time.Duration, ntp time.Time, ntpOK bool) time.Time {
	now := c.now()
	if ntpOK {
		if d := ntp.Sub(now); d < c.maxSkew && d > -c.maxSkew {
			c.anchored, c.anchorWall, c.anchorPTS = true, ntp, pts
			return ntp
		}
		c.badNTP++
	}
	if !c.anchored {
		c.anchored, c.anchorWall, c.anchorPTS = true, now, pts
		return now
	}
	est := c.anchorWall.Add(pts - c.anchorPTS)
	if d := est.Sub(now); d > c.maxDrift || d < -c.maxDrift {
		c.anchorWall, c.anchorPTS = now, pts
		return now
	}
	return est
}

// ptsDuration converts a timestamp in clock-rate units to a duration without
// overflowing for long-running streams.
func ptsDuration(pts int64, clockRate int) time.Duration {
	cr := int64(clockRate)
	return time.Duration(pts/cr)*time.Second + time.Duration((pts%cr)*int64(time.Second)/cr)
}
