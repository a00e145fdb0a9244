package check

import (
	"fmt"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
)

// Frame is one video sample of a recording, with the stamp the simulated
// camera put in it.
type Frame struct {
	// Index is the sample's position in its track.
	Index int
	// Stamped is false for a sample without a camsim stamp.
	Stamped bool
	// Stamp is the camera number, frame number and camera time.
	Stamp h264synth.Stamp
	// DTS and PTS are the sample's decode and presentation times in the
	// file, from its first sample.
	DTS, PTS time.Duration
	// Sync is the file's keyframe flag.
	Sync bool
}

// ExtractFrames parses an MP4 (progressive or fragmented) and returns the
// frames of its H.264 track in file order. A file without one H.264 track,
// or with a sample that does not split into NAL units, is an error.
func ExtractFrames(b []byte) ([]Frame, error) {
	f, err := ParseMP4(b)
	if err != nil {
		return nil, err
	}
	var vt *Track
	for _, t := range f.Tracks {
		if t.NALULength > 0 {
			if vt != nil {
				return nil, fmt.Errorf("check: tracks %d and %d are both H.264; want one", vt.ID, t.ID)
			}
			vt = t
		}
	}
	if vt == nil {
		return nil, fmt.Errorf("check: no H.264 track among %d", len(f.Tracks))
	}
	if len(vt.Samples) == 0 {
		return nil, fmt.Errorf("check: the H.264 track %d has no samples", vt.ID)
	}
	ticks := func(v int64) time.Duration {
		return time.Duration(float64(v) * float64(time.Second) / float64(vt.TimeScale))
	}
	out := make([]Frame, 0, len(vt.Samples))
	base := vt.Samples[0].DTS
	var nalus [][]byte
	for i, s := range vt.Samples {
		p := b[s.Offset : s.Offset+int64(s.Size)]
		nalus, err = splitAVCC(p, vt.NALULength, nalus[:0])
		if err != nil {
			return nil, fmt.Errorf("check: sample %d: %w", i, err)
		}
		st, ok := h264synth.FindStamp(nalus)
		out = append(out, Frame{
			Index: i, Stamped: ok, Stamp: st, Sync: s.Sync,
			DTS: ticks(s.DTS - base), PTS: ticks(s.DTS - base + int64(s.PTSOffset)),
		})
	}
	return out, nil
}

// splitAVCC splits a sample into its length-prefixed NAL units.
func splitAVCC(p []byte, lenSize int, dst [][]byte) ([][]byte, error) {
	for len(p) > 0 {
		if len(p) < lenSize {
			return nil, fmt.Errorf("%w: %d stray bytes after the last NAL unit", ErrMP4, len(p))
		}
		var n uint64
		for _, c := range p[:lenSize] {
			n = n<<8 | uint64(c)
		}
		p = p[lenSize:]
		if n == 0 || n > uint64(len(p)) {
			return nil, fmt.Errorf("%w: NAL unit of %d bytes, %d left", ErrMP4, n, len(p))
		}
		dst = append(dst, p[:n])
		p = p[n:]
	}
	if len(dst) == 0 {
		return nil, fmt.Errorf("%w: empty sample", ErrMP4)
	}
	return dst, nil
}
