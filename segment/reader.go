package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// parsedPart is one complete moof+mdat pair of a segment file.
type parsedPart struct {
	Part *fmp4.Part
	End  int64 // file offset just past the part's mdat
}

// parsedSegment is what a segment file holds, up to its last complete part.
type parsedSegment struct {
	Init     fmp4.Init
	InitEnd  int64
	Parts    []parsedPart
	ValidLen int64 // bytes up to the end of the last complete part
	Torn     error // why bytes after ValidLen were not accepted; nil if none
	Ref      *fmp4.InitTrack
	// Duration is the media duration of the reference track, in its
	// timescale: the end of its last sample.
	Duration uint64
	// payloadBase is cap() of the buffer the file was parsed from, so the
	// file offset of a sample is payloadBase - cap(sample.Payload).
	payloadBase int
}

// mediaDuration converts the reference-track duration to time.
func (p *parsedSegment) mediaDuration() time.Duration {
	return ticksToDuration(int64(p.Duration), int64(p.Ref.TimeScale))
}

// payloadOffset is the file offset of a sample payload of p.
func (p *parsedSegment) payloadOffset(payload []byte) int64 {
	return int64(p.payloadBase - cap(payload))
}

// ticksToDuration converts d units of a clock of rate to a duration without
// overflowing for any realistic d.
func ticksToDuration(d, rate int64) time.Duration {
	if rate <= 0 {
		return 0
	}
	sec, rem := d/rate, d%rate
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/rate)
}

// box is one top-level ISO BMFF box.
type box struct {
	typ        string
	start, end int64
}

// nextBox reads the header of the top-level box at off. It returns ok=false
// when the header or the body is incomplete.
func nextBox(data []byte, off int64) (box, bool, error) {
	rest := data[off:]
	if len(rest) < 8 {
		return box{}, false, nil
	}
	size := int64(binary.BigEndian.Uint32(rest))
	typ := string(rest[4:8])
	hdr := int64(8)
	switch size {
	case 0:
		return box{}, false, fmt.Errorf("box %q at %d extends to end of file: not written by this package", typ, off)
	case 1:
		if len(rest) < 16 {
			return box{}, false, nil
		}
		u := binary.BigEndian.Uint64(rest[8:])
		if u > uint64(len(data))*2+16 {
			return box{}, false, nil
		}
		size, hdr = int64(u), 16
	}
	if size < hdr {
		return box{}, false, fmt.Errorf("box %q at %d has size %d", typ, off, size)
	}
	if size > int64(len(rest)) {
		return box{}, false, nil
	}
	return box{typ: typ, start: off, end: off + size}, true, nil
}

// errNoInit means the file does not even hold a complete ftyp+moov.
var errNoInit = errors.New("segment file has no complete init (ftyp+moov)")

// parseSegment parses a segment file: ftyp, moov, then moof+mdat pairs. It
// returns every complete part before the first incomplete or invalid one
// (the torn tail, reported in Torn). Untrusted bytes give an error, never a
// panic.
func parseSegment(data []byte) (ps *parsedSegment, err error) {
	defer func() {
		if r := recover(); r != nil {
			ps, err = nil, fmt.Errorf("segment file: parser panic: %v", r)
		}
	}()
	ftyp, ok, err := nextBox(data, 0)
	if err != nil || !ok || ftyp.typ != "ftyp" {
		return nil, errNoInit
	}
	moov, ok, err := nextBox(data, ftyp.end)
	if err != nil || !ok || moov.typ != "moov" {
		return nil, errNoInit
	}
	ps = &parsedSegment{InitEnd: moov.end, ValidLen: moov.end, payloadBase: cap(data)}
	if err := ps.Init.Unmarshal(bytes.NewReader(data[:moov.end])); err != nil {
		return nil, fmt.Errorf("segment init: %w", err)
	}
	if len(ps.Init.Tracks) == 0 {
		return nil, errors.New("segment init has no tracks")
	}
	ps.Ref = ps.Init.Tracks[0]
	for _, t := range ps.Init.Tracks {
		if t.TimeScale == 0 {
			return nil, fmt.Errorf("track %d has time scale 0", t.ID)
		}
		if t.Codec != nil && t.Codec.IsVideo() {
			ps.Ref = t
			break
		}
	}
	trackIDs := map[int]bool{}
	for _, t := range ps.Init.Tracks {
		trackIDs[t.ID] = true
	}
	nextRef := uint64(0)
	off := moov.end
	for off < int64(len(data)) {
		moof, ok, err := nextBox(data, off)
		if err != nil {
			ps.Torn = err
			break
		}
		if !ok {
			ps.Torn = fmt.Errorf("incomplete box at offset %d", off)
			break
		}
		if moof.typ != "moof" {
			ps.Torn = fmt.Errorf("box %q at offset %d where moof expected", moof.typ, off)
			break
		}
		mdat, ok, err := nextBox(data, moof.end)
		if err != nil || !ok || mdat.typ != "mdat" {
			ps.Torn = fmt.Errorf("part at offset %d has no complete mdat", off)
			break
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(data[moof.start:mdat.end]); err != nil || len(parts) != 1 {
			ps.Torn = fmt.Errorf("part at offset %d: %v", off, err)
			break
		}
		p := parts[0]
		valid := true
		for _, pt := range p.Tracks {
			if !trackIDs[pt.ID] {
				valid = false
				break
			}
			if pt.ID == ps.Ref.ID {
				if pt.BaseTime < nextRef && len(ps.Parts) > 0 {
					valid = false
					break
				}
				end := pt.BaseTime
				for _, s := range pt.Samples {
					end += uint64(s.Duration)
				}
				nextRef = end
			}
		}
		if !valid {
			ps.Torn = fmt.Errorf("part at offset %d has an unknown track or goes back in time", off)
			break
		}
		ps.Parts = append(ps.Parts, parsedPart{Part: p, End: mdat.end})
		ps.ValidLen = mdat.end
		ps.Duration = nextRef
		off = mdat.end
	}
	return ps, nil
}

// codecsEqual tells whether two segments can be concatenated track by track.
func codecsEqual(a, b []*fmp4.InitTrack) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].TimeScale != b[i].TimeScale {
			return false
		}
		if !codecEqual(a[i].Codec, b[i].Codec) {
			return false
		}
	}
	return true
}

func codecEqual(a, b mp4.Codec) bool {
	switch x := a.(type) {
	case *mp4.CodecH264:
		y, ok := b.(*mp4.CodecH264)
		return ok && bytes.Equal(x.SPS, y.SPS) && bytes.Equal(x.PPS, y.PPS)
	case *mp4.CodecH265:
		y, ok := b.(*mp4.CodecH265)
		return ok && bytes.Equal(x.VPS, y.VPS) && bytes.Equal(x.SPS, y.SPS) && bytes.Equal(x.PPS, y.PPS)
	case *mp4.CodecMPEG4Audio:
		y, ok := b.(*mp4.CodecMPEG4Audio)
		return ok && x.Config == y.Config
	case *mp4.CodecOpus:
		y, ok := b.(*mp4.CodecOpus)
		return ok && *x == *y
	case *mp4.CodecLPCM:
		y, ok := b.(*mp4.CodecLPCM)
		return ok && *x == *y
	}
	return false
}
