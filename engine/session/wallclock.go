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
