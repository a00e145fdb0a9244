package h264synth

import (
	"errors"
	"fmt"
)

// Params describe a synthetic stream. All fields are required; the camera
// simulator applies its defaults before calling New.
type Params struct {
	// Width and Height in pixels: even, 16..4096.
	Width, Height int
	// FPS is the frame rate, 1..120.
	FPS int
	// GOP is the distance between IDR pictures in frames, 1..3600.
	GOP int
	// Bitrate is the target of the elementary stream (NAL unit bytes) in
	// bit/s. It must cover the pictures themselves: MinBitrate tells how much
	// that is.
	Bitrate int
}

// ErrBitrateTooLow is returned (wrapped) by New when the pictures alone
// exceed the bitrate budget.
var ErrBitrateTooLow = errors.New("bitrate too low")

// geometry is what the picture syntax needs of Params.
type geometry struct {
	width, height   int
	mbW, mbH, mbs   int
	log2MaxFrameNum int
	pcmGrey         []byte
	pcmWhite        []byte
}

// Validate reports the first invalid field of p.
func (p Params) Validate() error {
	switch {
	case p.Width < 16 || p.Width > 4096 || p.Width%2 != 0:
		return fmt.Errorf("h264synth: width %d: want an even number in 16..4096", p.Width)
	case p.Height < 16 || p.Height > 4096 || p.Height%2 != 0:
		return fmt.Errorf("h264synth: height %d: want an even number in 16..4096", p.Height)
	case p.FPS < 1 || p.FPS > 120:
		return fmt.Errorf("h264synth: fps %d: want 1..120", p.FPS)
	case p.GOP < 1 || p.GOP > 3600:
		return fmt.Errorf("h264synth: gop %d: want 1..3600", p.GOP)
	case p.Bitrate < 1:
		return fmt.Errorf("h264synth: bitrate %d: want > 0", p.Bitrate)
	}
	return nil
}

// Stream generates the access units of one synthetic camera. It is not safe
// for concurrent use.
type Stream struct {
	p    Params
	g    geometry
	sps  []byte
	pps  []byte
	idrs [2][]byte // alternating idr_pic_id, so consecutive IDRs differ
	// filler is one filler-data NAL unit of the largest size ever needed:
	// header, 0xFF bytes, and room for the trailing 0x80 written per frame.
	filler    []byte
	fillerEnd int // index of the 0x80 written last frame, or 0
	au        [][]byte
	sei       []byte
	lastWhite int // address of the white block on screen, or -1
	pcm       []pcmMB

	gopIndex int   // frame index in the GOP; 0 = IDR next
	idrCount int   // IDR pictures written
	frames   int64 // frames since the bucket was reset
	sent     int64 // bytes since the bucket was reset
}

// New prepares a stream: parameter sets and the IDR picture are built once.
func New(p Params) (*Stream, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	g := geometry{width: p.Width, height: p.Height}
	g.mbW, g.mbH = (p.Width+15)/16, (p.Height+15)/16
	g.mbs = g.mbW * g.mbH
	g.log2MaxFrameNum = 4
	for g.log2MaxFrameNum < 16 && 1<<g.log2MaxFrameNum < p.GOP {
		g.log2MaxFrameNum++
	}
	g.pcmGrey, g.pcmWhite = makePCM(lumaGrey), makePCM(lumaWhite)
	s := &Stream{p: p, g: g, sps: g.sps(p.FPS, p.Bitrate), pps: pps()}
	s.idrs[0], s.idrs[1] = g.idr(0), g.idr(1)
	if min := s.MinBitrate(); p.Bitrate < min {
		return nil, fmt.Errorf("h264synth: %w: %d bit/s for %dx%d at %d fps with GOP %d; the synthetic pictures alone need %d bit/s",
			ErrBitrateTooLow, p.Bitrate, p.Width, p.Height, p.FPS, p.GOP, min)
	}
	// The largest filler: a whole frame budget plus the slack the bucket
	// may owe after a reset.
	s.filler = make([]byte, 2+2*s.frameBudget()+16)
	s.filler[0] = nalHeader(0, naluFiller)
	for i := 1; i < len(s.filler); i++ {
		s.filler[i] = 0xFF
	}
	return s, nil
}

// Params returns the parameters the stream was made with.
func (s *Stream) Params() Params { return s.p }

// SPS returns the sequence parameter set NAL unit.
func (s *Stream) SPS() []byte { return s.sps }

// PPS returns the picture parameter set NAL unit.
func (s *Stream) PPS() []byte { return s.pps }

// IDRSize returns the bytes of an IDR access unit without filler.
func (s *Stream) IDRSize() int {
	return len(s.sps) + len(s.pps) + len(s.idrs[0]) + seiSize
}

// MaxPSize returns the largest P access unit without filler.
func (s *Stream) MaxPSize() int {
	// Two I_PCM macroblocks (386 bytes each with mb_type and alignment), a
	// slice header of at most 16 bytes and the skip runs.
	return 2*386 + 16 + 8 + seiSize + 2
}

// MinBitrate is the lowest Bitrate the pictures fit in (bit/s).
func (s *Stream) MinBitrate() int {
	gopBytes := int64(s.IDRSize()) + int64(s.p.GOP-1)*int64(s.MaxPSize())
	// Filler NAL units need two bytes of their own.
	gopBytes += int64(s.p.GOP) * 2
	return int((gopBytes*8*int64(s.p.FPS) + int64(s.p.GOP) - 1) / int64(s.p.GOP))
}

func (s *Stream) frameBudget() int {
	return (s.p.Bitrate + 8*s.p.FPS - 1) / (8 * s.p.FPS)
}

// Restart makes the next access unit an IDR picture and resets the bitrate
// bucket, as after a camera reboot or a resumed stream.
func (s *Stream) Restart() {
	s.gopIndex = 0
	s.frames = 0
	s.sent = 0
}

// Frame is one access unit.
type Frame struct {
	// NALUs without start codes: [SPS, PPS,] SEI, slice, [filler]. They
	// alias buffers of the Stream that the next call to Next reuses.
	NALUs [][]byte
	// IDR is true for an IDR access unit.
	IDR bool
	// Size is the sum of the NAL unit lengths.
	Size int
}

// Next returns the next access unit, stamped with st.
func (s *Stream) Next(st Stamp) Frame {
	// Undo last frame's trailing bits in the shared filler buffer.
	if s.fillerEnd != 0 {
		s.filler[s.fillerEnd] = 0xFF
		s.fillerEnd = 0
	}
	s.au = s.au[:0]
	idr := s.gopIndex == 0
	s.sei = appendSEI(s.sei[:0], st)
	if idr {
		s.au = append(s.au, s.sps, s.pps, s.sei, s.idrs[s.idrCount%2])
		s.idrCount++
		s.lastWhite = -1
	} else {
		s.au = append(s.au, s.sei, s.pSlice(st.Frame))
	}
	size := 0
	for _, n := range s.au {
		size += len(n)
	}
	// Leaky bucket: after frame k the stream should have sent
	// (k+1)*Bitrate/(8*FPS) bytes.
	s.frames++
	target := s.frames * int64(s.p.Bitrate) / int64(8*s.p.FPS)
	if fill := target - s.sent - int64(size); fill >= 2 {
		if fill > int64(len(s.filler)) {
			fill = int64(len(s.filler))
		}
		f := s.filler[:fill]
		f[fill-1] = 0x80 // rbsp_trailing_bits
		s.fillerEnd = int(fill - 1)
		s.au = append(s.au, f)
		size += int(fill)
	}
	s.sent += int64(size)
	s.gopIndex++
	if s.gopIndex == s.p.GOP {
		s.gopIndex = 0
	}
	return Frame{NALUs: s.au, IDR: idr, Size: size}
}

// pSlice paints the moving block of frame seq white and erases the block
// still on screen from an earlier P picture.
func (s *Stream) pSlice(seq uint64) []byte {
	frameNum := uint32(s.gopIndex % (1 << s.g.log2MaxFrameNum))
	cur := int(seq % uint64(s.g.mbs))
	mbs := s.pcm[:0]
	switch prev := s.lastWhite; {
	case prev < 0 || prev == cur:
		mbs = append(mbs, pcmMB{cur, lumaWhite})
	case prev < cur:
		mbs = append(mbs, pcmMB{prev, lumaGrey}, pcmMB{cur, lumaWhite})
	default:
		mbs = append(mbs, pcmMB{cur, lumaWhite}, pcmMB{prev, lumaGrey})
	}
	s.lastWhite = cur
	s.pcm = mbs
	return s.g.pSlice(frameNum, mbs)
}

// AnnexB appends the NAL units with 4-byte start codes to dst.
func AnnexB(dst []byte, nalus [][]byte) []byte {
	for _, n := range nalus {
		dst = append(dst, 0, 0, 0, 1)
		dst = append(dst, n...)
	}
	return dst
}
