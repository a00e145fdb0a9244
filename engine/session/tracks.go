package session

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/understudy-nvr/understudy/segment"
)

// videoTrack turns the RTP packets of an H.264 or H.265 media into access
// units ready for the writer: parameter sets tracked from the SDP and in
// band, decode timestamps extracted, AVCC framing.
type videoTrack struct {
	media  *description.Media
	format format.Format
	h265   bool

	dec264 *rtph264.Decoder
	dec265 *rtph265.Decoder
	dts264 *h264.DTSExtractor
	dts265 *h265.DTSExtractor
	// lastDTS is the DTS of the last frame handed out (haveDTS: one was).
	lastDTS int64
	haveDTS bool
	// dtsRepairs counts frames whose DTS the extractor could not tell.
	dtsRepairs uint64

	vps, sps, pps []byte
	// the parameter sets of the writer configuration last handed out
	usedVPS, usedSPS, usedPPS []byte
}

// newVideoTrack returns nil, nil for a format that is not supported video.
func newVideoTrack(m *description.Media, f format.Format) (*videoTrack, error) {
	switch f := f.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		sps, pps := f.SafeParams()
		return &videoTrack{media: m, format: f, dec264: d, sps: clone(sps), pps: clone(pps)}, nil
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		vps, sps, pps := f.SafeParams()
		return &videoTrack{media: m, format: f, h265: true, dec265: d, vps: clone(vps), sps: clone(sps), pps: clone(pps)}, nil
	}
	return nil, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (v *videoTrack) codecName() string {
	if v.h265 {
		return "H.265"
	}
	return "H.264"
}

// codec returns the MP4 codec for the current parameter sets and remembers
// them, so that a later change is noticed.
func (v *videoTrack) codec() mp4.Codec {
	v.usedVPS, v.usedSPS, v.usedPPS = v.vps, v.sps, v.pps
	if v.h265 {
		return &mp4.CodecH265{VPS: v.vps, SPS: v.sps, PPS: v.pps}
	}
	return &mp4.CodecH264{SPS: v.sps, PPS: v.pps}
}

// decode returns the access unit completed by pkt, or nil while more packets
// are needed.
func (v *videoTrack) decode(pkt *rtp.Packet) ([][]byte, error) {
	var au [][]byte
	var err error
	if v.h265 {
		au, err = v.dec265.Decode(pkt)
		if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
			return nil, nil
		}
	} else {
		au, err = v.dec264.Decode(pkt)
		if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			return nil, nil
		}
	}
	return au, err
}

// frame turns an access unit into a writer frame. It reports whether the
// unit is a random access point, whether the parameter sets changed since
// the last writer configuration, and ok=false for a unit that cannot be
// recorded yet (no parameter sets, or no keyframe seen).
func (v *videoTrack) frame(au [][]byte, pts int64) (f segment.Frame, random, changed, ok bool) {
	filtered := au[:0:0]
	hasParams := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if v.h265 {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				v.vps, hasParams = updateParam(v.vps, n), true
			case h265.NALUType_SPS_NUT:
				v.sps, hasParams = updateParam(v.sps, n), true
			case h265.NALUType_PPS_NUT:
				v.pps, hasParams = updateParam(v.pps, n), true
			case h265.NALUType_AUD_NUT:
				continue
			}
		} else {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				v.sps, hasParams = updateParam(v.sps, n), true
			case h264.NALUTypePPS:
				v.pps, hasParams = updateParam(v.pps, n), true
			case h264.NALUTypeAccessUnitDelimiter:
				continue
			}
		}
		filtered = append(filtered, n)
	}
	au = filtered
	if len(au) == 0 || v.sps == nil || v.pps == nil || (v.h265 && v.vps == nil) {
		return f, false, false, false
	}
	changed = v.usedSPS != nil && (!bytes.Equal(v.sps, v.usedSPS) || !bytes.Equal(v.pps, v.usedPPS) || !bytes.Equal(v.vps, v.usedVPS))

	if v.h265 {
		random = h265.IsRandomAccess(au)
	} else {
		random = h264.IsRandomAccess(au)
	}
	// The DTS extractors need the parameter sets in the first unit they see;
	// players like them in every keyframe too.
	if random && !hasParams {
		if v.h265 {
			au = append([][]byte{v.vps, v.sps, v.pps}, au...)
		} else {
			au = append([][]byte{v.sps, v.pps}, au...)
		}
	}

	var dts int64
	var err error
	if v.h265 {
		if v.dts265 == nil {
			if !random {
				return f, false, changed, false
			}
			v.dts265 = &h265.DTSExtractor{}
			v.dts265.Initialize()
		}
		dts, err = v.dts265.Extract(au, pts)
	} else {
		if v.dts264 == nil {
			if !random {
				return f, false, changed, false
			}
			v.dts264 = &h264.DTSExtractor{}
			v.dts264.Initialize()
		}
		dts, err = v.dts264.Extract(au, pts)
	}
	if err != nil {
		// The extractor cannot tell this frame's DTS: mediacommon's says
		// "DTS is greater than PTS" for some B-frames of x264's default
		// B-pyramid. Dropping up to the next keyframe, as this once did,
		// lost 0.5-1.6 s of video per error. The frame is kept with the
		// smallest DTS that keeps decoding order (its composition offset
		// may then be negative, which fMP4 allows), and the extractor,
		// whose state already took the frame in, goes on.
		v.dtsRepairs++
		dts = pts
		if v.haveDTS {
			dts = v.lastDTS + 1
		}
	}
	if v.haveDTS && dts <= v.lastDTS {
		dts = v.lastDTS + 1 // decoding order is strict
	}
	v.lastDTS, v.haveDTS = dts, true

	// H.265 in MP4 uses the same 4-byte length-prefixed framing as H.264.
	payload, err := h264.AVCC(au).Marshal()
	if err != nil {
		return f, false, changed, false
	}
	return segment.Frame{PTS: pts, DTS: dts, Random: random, Payload: payload}, random, changed, true
}

func updateParam(old, n []byte) []byte {
	if bytes.Equal(old, n) {
		return old
	}
	return clone(n)
}

// audioTrack depacketizes one audio media into frames as MP4 stores them.
type audioTrack struct {
	media     *description.Media
	format    format.Format
	name      string
	clockRate int
	// samplesPerFrame is the duration of one frame of a multi-frame packet.
	samplesPerFrame int64
	codec           mp4.Codec
	decode          func(*rtp.Packet) ([][]byte, error)
}

// newAudioTrack returns nil, nil for a format that is not supported audio.
func newAudioTrack(m *description.Media, f format.Format) (*audioTrack, error) {
	switch f := f.(type) {
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, fmt.Errorf("AAC without config")
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioTrack{
			media: m, format: f, name: "AAC", clockRate: f.ClockRate(), samplesPerFrame: 1024,
			codec: &mp4.CodecMPEG4Audio{Config: *f.Config},
			decode: func(pkt *rtp.Packet) ([][]byte, error) {
				aus, err := d.Decode(pkt)
				if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
					return nil, nil
				}
				return aus, err
			},
		}, nil
	case *format.G711:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		mulaw := f.MULaw
		return &audioTrack{
			media: m, format: f, name: "G.711", clockRate: f.ClockRate(),
			codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: f.SampleRate, ChannelCount: f.ChannelCount},
			decode: func(pkt *rtp.Packet) ([][]byte, error) {
				samples, err := d.Decode(pkt)
				if err != nil {
					return nil, err
				}
				// MP4 has no G.711 sample entry players agree on: store LPCM.
				if mulaw {
					var l g711.Mulaw
					l.Unmarshal(samples)
					return [][]byte{l}, nil
				}
				var l g711.Alaw
				l.Unmarshal(samples)
				return [][]byte{l}, nil
			},
		}, nil
	case *format.Opus:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioTrack{
			media: m, format: f, name: "Opus", clockRate: f.ClockRate(),
			codec: &mp4.CodecOpus{ChannelCount: f.ChannelCount},
			decode: func(pkt *rtp.Packet) ([][]byte, error) {
				p, err := d.Decode(pkt)
				if err != nil {
					return nil, err
				}
				return [][]byte{p}, nil
			},
		}, nil
	}
	return nil, nil
}
