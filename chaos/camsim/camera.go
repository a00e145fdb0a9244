package camsim

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtcp"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
)

// State is what a camera is doing.
type State int

// Camera states.
const (
	// Stopped: no stream; DESCRIBE and SETUP answer 404.
	Stopped State = iota
	// Running: sending video (and audio) to every playing session.
	Running
	// Paused: sessions stay open but receive no packets.
	Paused
)

func (s State) String() string {
	switch s {
	case Stopped:
		return "stopped"
	case Running:
		return "running"
	case Paused:
		return "paused"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Camera is one simulated camera of a Server. Its methods are safe for
// concurrent use.
type Camera struct {
	s *Server
	n int

	mu       sync.Mutex
	state    State
	stream   *gortsplib.ServerStream
	feed     *feed
	stop     chan struct{}
	done     chan struct{}
	sessions map[*gortsplib.ServerSession]bool // value: playing
	slog     *sendLog                          // nil without Config.SendLogDir

	unreachable atomic.Bool
	paused      atomic.Bool
	readers     atomic.Int32 // playing sessions
	reportNow   atomic.Bool  // send sender reports at the next tick, before its packets
	reportAfter atomic.Bool  // send sender reports at the next tick, after its packets

	seq        atomic.Uint64 // next frame sequence number, kept across restarts
	framesSent atomic.Uint64
	bytesSent  atomic.Uint64
	dropped    atomic.Uint64
	writeErrs  atomic.Uint64
	clockSkew  atomic.Int64 // time.Duration added to the camera's wall clock
}

func newCamera(s *Server, n int) *Camera {
	return &Camera{s: s, n: n, sessions: map[*gortsplib.ServerSession]bool{}}
}

// Number returns the camera number N of its path /cam/N.
func (c *Camera) Number() int { return c.n }

// URL returns the camera's RTSP URL (see Server.URL).
func (c *Camera) URL() string { return c.s.URL(c.n) }

// State returns whether the camera is stopped, running or paused.
func (c *Camera) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == Running && c.paused.Load() {
		return Paused
	}
	return c.state
}

// Stats are counters of one camera.
type Stats struct {
	// Frames is the number of frames generated (sent or not), paused time
	// included: the next frame's Stamp.Frame.
	Frames uint64
	// FramesSent and BytesSent count the access units (and their H.264 NAL
	// unit bytes) written while at least one session was playing.
	FramesSent, BytesSent uint64
	// Dropped counts frames skipped because the camera's goroutine ran
	// more than a second late (an overloaded machine): their numbers are
	// missing from the stream, and no recorder is to blame.
	Dropped uint64
	// WriteErrors counts packets a session could not take (its write queue
	// was full: a reader too slow for the stream, as a real camera would
	// drop them).
	WriteErrors uint64
	// Readers is the number of playing sessions.
	Readers int
}

// Stats returns the camera's counters.
func (c *Camera) Stats() Stats {
	return Stats{
		Frames:      c.seq.Load(),
		FramesSent:  c.framesSent.Load(),
		BytesSent:   c.bytesSent.Load(),
		Dropped:     c.dropped.Load(),
		WriteErrors: c.writeErrs.Load(),
		Readers:     int(c.readers.Load()),
	}
}

// Start starts a stopped camera: a new stream (new SSRCs, new random RTP
// timestamp bases, like a rebooted camera) that begins with an IDR frame.
// Starting a running or paused camera does nothing.
func (c *Camera) Start() error {
	c.s.mu.Lock()
	closed, started := c.s.closed, c.s.started
	c.s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !started {
		return errors.New("camsim: server not started")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != Stopped {
		return nil
	}
	f, err := newFeed(c)
	if err != nil {
		return fmt.Errorf("camsim: camera %d: %w", c.n, err)
	}
	c.paused.Store(false)
	c.stream = f.stream
	c.feed = f
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	c.state = Running
	c.slog.event(SendLogEntry{Ev: EvStart, T0: f.clock(0).UnixNano(), FPS: c.s.cfg.FPS, GOP: c.s.cfg.GOP})
	go f.run(c.stop, c.done)
	return nil
}

// Stop stops the camera: its stream closes, which ends every session, and
// DESCRIBE answers 404 until Start. Stopping a stopped camera does nothing.
func (c *Camera) Stop() {
	c.mu.Lock()
	if c.state == Stopped {
		c.mu.Unlock()
		return
	}
	c.state = Stopped
	st, stop, done := c.stream, c.stop, c.done
	c.stream, c.feed = nil, nil
	c.mu.Unlock()
	close(stop)
	<-done
	c.slog.event(SendLogEntry{Ev: EvStop, T0: c.now().UnixNano(), Skew: c.clockSkew.Load()})
	// Outside c.mu: closing sessions calls back into OnSessionClose.
	st.Close()
}

// Pause keeps the camera's sessions but stops sending: no RTP, no RTCP.
// Frame numbers and timestamps keep advancing, so the pause shows as a gap.
func (c *Camera) Pause() { c.paused.Store(true) }

// Resume ends a Pause. Sending restarts with an IDR frame and a sender
// report.
func (c *Camera) Resume() {
	if c.paused.Swap(false) {
		c.reportNow.Store(true)
	}
}

// SetClockSkew sets how far the camera's wall clock is from Config.Now:
// the sender reports and stamps of the frames that follow move by d at
// once, as when a camera's NTP client steps its clock. RTP timestamps keep
// running undisturbed.
func (c *Camera) SetClockSkew(d time.Duration) { c.clockSkew.Store(int64(d)) }

// Unreachable reports whether SetUnreachable(true) is in effect.
func (c *Camera) Unreachable() bool { return c.unreachable.Load() }

// SetUnreachable makes the camera unreachable (true) or reachable again
// (false). While unreachable, any request for it closes the connection
// without an answer, and its sessions are closed when it becomes so; the
// camera itself keeps running.
func (c *Camera) SetUnreachable(v bool) {
	c.unreachable.Store(v)
	if !v {
		return
	}
	c.mu.Lock()
	sessions := make([]*gortsplib.ServerSession, 0, len(c.sessions))
	for ss := range c.sessions {
		sessions = append(sessions, ss)
	}
	c.mu.Unlock()
	for _, ss := range sessions {
		ss.Close()
	}
}

// now is the camera's wall clock.
func (c *Camera) now() time.Time {
	return c.s.cfg.Now().Add(time.Duration(c.clockSkew.Load()))
}

func (c *Camera) currentStream() *gortsplib.ServerStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stream
}

// addSession records a session that set up the stream st; it fails when the
// camera was restarted since st was looked up.
func (c *Camera) addSession(ss *gortsplib.ServerSession, st *gortsplib.ServerStream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream != st {
		return errors.New("camsim: stream changed")
	}
	ss.SetUserData(c)
	if _, ok := c.sessions[ss]; !ok {
		c.sessions[ss] = false
	}
	return nil
}

func (c *Camera) setPlaying(ss *gortsplib.ServerSession, playing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was, ok := c.sessions[ss]
	if !ok || was == playing {
		return
	}
	c.sessions[ss] = playing
	defer func() {
		c.slog.event(SendLogEntry{Ev: EvReaders, T0: c.now().UnixNano(), N: int(c.readers.Load()), Skew: c.clockSkew.Load()})
	}()
	if playing {
		c.readers.Add(1)
		// A sender report first, so the reader can map RTP time to wall
		// clock from its first packet on: the session queues it before any
		// RTP packet of the stream. Some clients (gortsplib v4.16.2) drop a
		// report whose SSRC they have not yet seen in RTP, so another
		// follows the next packets.
		c.reportAfter.Store(true)
		if c.feed != nil && !c.paused.Load() {
			c.feed.writeReports(time.Since(c.feed.start), func(m *description.Media, p rtcp.Packet) {
				_ = ss.WritePacketRTCP(m, p)
			})
		}
	} else {
		c.readers.Add(-1)
	}
}

func (c *Camera) removeSession(ss *gortsplib.ServerSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if playing, ok := c.sessions[ss]; ok {
		delete(c.sessions, ss)
		if playing {
			c.readers.Add(-1)
			c.slog.event(SendLogEntry{Ev: EvReaders, T0: c.now().UnixNano(), N: int(c.readers.Load()), Skew: c.clockSkew.Load()})
		}
	}
}

// feed is one run of a camera: its stream and the goroutine writing to it.
type feed struct {
	c      *Camera
	stream *gortsplib.ServerStream
	synth  *h264synth.Stream

	video    *description.Media
	videoEnc *rtph264.Encoder
	audio    *description.Media // nil without audio
	audioEnc *rtpmpeg4audio.Encoder
	aacFrame []byte

	fps       int64
	rate      int64 // audio sample rate
	videoSSRC uint32
	audioSSRC uint32
	videoBase uint32 // RTP timestamp of frame 0
	audioBase uint32

	start time.Time // monotonic start of the run
	ntp0  time.Time // Config.Now at start; clock() adds the skew

	// Counters of sender reports, also read by handler goroutines.
	videoPkts, videoOctets atomic.Uint32
	audioPkts, audioOctets atomic.Uint32

	nextFrame  int64 // frames since start
	nextAudio  int64 // AAC frames since start
	restart    bool  // the next frame must be an IDR (after a pause)
	lastReport time.Time
}

func newFeed(c *Camera) (*feed, error) {
	cfg := &c.s.cfg
	synth, err := h264synth.New(cfg.videoParams())
	if err != nil {
		return nil, err
	}
	f := &feed{c: c, synth: synth, fps: int64(cfg.FPS), rate: int64(cfg.AudioSampleRate)}
	h264f := &format.H264{PayloadTyp: 96, SPS: synth.SPS(), PPS: synth.PPS(), PacketizationMode: 1}
	f.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{h264f}}
	desc := &description.Session{Title: fmt.Sprintf("Understudy simulated camera %d", c.n), Medias: []*description.Media{f.video}}
	if f.videoEnc, err = h264f.CreateEncoder(); err != nil {
		return nil, err
	}
	var aacf *format.MPEG4Audio
	if cfg.Audio {
		aacf = &format.MPEG4Audio{
			PayloadTyp: 97,
			Config: &mpeg4audio.AudioSpecificConfig{
				Type: mpeg4audio.ObjectTypeAACLC, SampleRate: cfg.AudioSampleRate, ChannelCount: cfg.AudioChannels,
			},
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		}
		f.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{aacf}}
		desc.Medias = append(desc.Medias, f.audio)
		if f.audioEnc, err = aacf.CreateEncoder(); err != nil {
			return nil, err
		}
		f.aacFrame = aacSilentFrame(cfg.AudioChannels)
	}
	f.stream = &gortsplib.ServerStream{Server: c.s.rtsp, Desc: desc}
	if err := f.stream.Initialize(); err != nil {
		return nil, err
	}
	stats := f.stream.Stats()
	f.videoSSRC = stats.Medias[f.video].Formats[h264f].LocalSSRC
	if f.audio != nil {
		f.audioSSRC = stats.Medias[f.audio].Formats[aacf].LocalSSRC
	}
	f.videoBase, f.audioBase = randUint32(), randUint32()
	f.start = time.Now()
	f.ntp0 = cfg.Now()
	return f, nil
}

// clock returns the camera's wall-clock time at d after the start.
func (f *feed) clock(d time.Duration) time.Time {
	return f.ntp0.Add(d + time.Duration(f.c.clockSkew.Load()))
}

func (f *feed) skew() time.Duration { return time.Duration(f.c.clockSkew.Load()) }

// frameTime returns the offset of frame i from the start.
func (f *feed) frameTime(i int64) time.Duration {
	return time.Duration(i * int64(time.Second) / f.fps)
}

func (f *feed) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	f.lastReport = f.start
	f.tick(time.Now())
	t := time.NewTicker(f.frameTime(1))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f.tick(time.Now())
		}
	}
}

// maxBehind is how late a camera may fall before it drops frames instead of
// sending them in a burst.
const maxBehind = time.Second

// tick sends every frame and audio frame due at now, and sender reports.
func (f *feed) tick(now time.Time) {
	elapsed := now.Sub(f.start)
	paused := f.c.paused.Load()
	sending := !paused && f.c.readers.Load() > 0

	// Reports before packets: after a resume the report comes first.
	if !paused && (f.c.reportNow.Swap(false) || now.Sub(f.lastReport) >= f.c.s.cfg.SenderReportPeriod) {
		f.lastReport = now
		f.writeReports(elapsed, f.writeRTCP)
	}

	due := int64(elapsed) * f.fps / int64(time.Second)
	if f.frameTime(due-f.nextFrame) > maxBehind {
		skipped := due - f.nextFrame
		first := f.c.seq.Add(uint64(skipped)) - uint64(skipped)
		f.c.slog.frames(first, first+uint64(skipped)-1, f.clock(f.frameTime(f.nextFrame)), f.clock(f.frameTime(due-1)),
			f.skew(), SkipBehind, nil)
		f.c.dropped.Add(uint64(skipped))
		f.nextFrame = due
		f.c.s.cfg.Logger.Warn("camsim: camera fell behind, frames dropped", "camera", f.c.n, "frames", skipped)
	}
	for ; f.nextFrame <= due; f.nextFrame++ {
		seq := f.c.seq.Add(1) - 1
		if paused {
			f.restart = true
			t := f.clock(f.frameTime(f.nextFrame))
			f.c.slog.frames(seq, seq, t, t, f.skew(), SkipPaused, nil)
			continue
		}
		if f.restart {
			f.synth.Restart()
			f.restart = false
		}
		f.writeFrame(seq, f.nextFrame, sending)
	}
	if !paused && f.c.reportAfter.Swap(false) {
		defer f.writeReports(elapsed, f.writeRTCP) // after the audio too
	}

	if f.audio != nil {
		aDue := int64(elapsed) * f.rate / (aacSamplesPerFrame * int64(time.Second))
		if aDue-f.nextAudio > f.rate/aacSamplesPerFrame {
			f.nextAudio = aDue
		}
		if n := aDue - f.nextAudio + 1; n > 0 {
			if sending {
				f.writeAudio(f.nextAudio, int(n))
			}
			f.nextAudio += n
		}
	}

}

func (f *feed) writeFrame(seq uint64, i int64, sending bool) {
	ntp := f.clock(f.frameTime(i))
	fr := f.synth.Next(h264synth.Stamp{Camera: uint32(f.c.n), Frame: seq, Time: ntp})
	if !sending {
		why := SkipNoReader
		if f.c.unreachable.Load() {
			why = SkipUnreachable
		}
		f.c.slog.frames(seq, seq, ntp, ntp, f.skew(), why, nil)
		return
	}
	pkts, err := f.videoEnc.Encode(fr.NALUs)
	if err != nil {
		f.c.s.cfg.Logger.Error("camsim: packetize", "camera", f.c.n, "err", err)
		f.c.slog.frames(seq, seq, ntp, ntp, f.skew(), SkipClosed, nil)
		return
	}
	ts := f.videoBase + uint32(i*90000/f.fps)
	for _, p := range pkts {
		p.Timestamp = ts
		// An error means the stream closed under us (Stop); the run ends.
		if f.stream.WritePacketRTPWithNTP(f.video, p, ntp) != nil {
			f.c.slog.frames(seq, seq, ntp, ntp, f.skew(), SkipClosed, nil)
			return
		}
		f.videoPkts.Add(1)
		f.videoOctets.Add(uint32(len(p.Payload)))
	}
	var idr *uint64
	if fr.IDR {
		idr = &seq
	}
	f.c.slog.frames(seq, seq, ntp, ntp, f.skew(), "", idr)
	f.c.framesSent.Add(1)
	f.c.bytesSent.Add(uint64(fr.Size))
}

// writeAudio sends n silent AAC frames from frame index first.
func (f *feed) writeAudio(first int64, n int) {
	aus := make([][]byte, n)
	for i := range aus {
		aus[i] = f.aacFrame
	}
	pkts, err := f.audioEnc.Encode(aus)
	if err != nil {
		f.c.s.cfg.Logger.Error("camsim: packetize audio", "camera", f.c.n, "err", err)
		return
	}
	base := f.audioBase + uint32(first*aacSamplesPerFrame)
	ntp := f.clock(time.Duration(first * aacSamplesPerFrame * int64(time.Second) / f.rate))
	for _, p := range pkts {
		// The encoder numbers timestamps from 0 for this batch.
		pts := p.Timestamp
		p.Timestamp += base
		if f.stream.WritePacketRTPWithNTP(f.audio, p, ntp.Add(time.Duration(int64(pts)*int64(time.Second)/f.rate))) != nil {
			return
		}
		f.audioPkts.Add(1)
		f.audioOctets.Add(uint32(len(p.Payload)))
	}
}

// writeRTCP writes a packet to every reader of the stream.
func (f *feed) writeRTCP(m *description.Media, p rtcp.Packet) {
	// An error means the stream closed under us (Stop): the run is ending.
	_ = f.stream.WritePacketRTCP(m, p)
}

// writeReports writes an RTCP sender report per track with write, mapping
// the camera's wall clock at elapsed since the start to the RTP clocks.
func (f *feed) writeReports(elapsed time.Duration, write func(*description.Media, rtcp.Packet)) {
	ntp := NTPTimestamp(f.clock(elapsed))
	write(f.video, &rtcp.SenderReport{
		SSRC:        f.videoSSRC,
		NTPTime:     ntp,
		RTPTime:     f.videoBase + uint32(int64(elapsed)*90000/int64(time.Second)),
		PacketCount: f.videoPkts.Load(),
		OctetCount:  f.videoOctets.Load(),
	})
	if f.audio != nil {
		write(f.audio, &rtcp.SenderReport{
			SSRC:        f.audioSSRC,
			NTPTime:     ntp,
			RTPTime:     f.audioBase + uint32(int64(elapsed)*f.rate/int64(time.Second)),
			PacketCount: f.audioPkts.Load(),
			OctetCount:  f.audioOctets.Load(),
		})
	}
}
