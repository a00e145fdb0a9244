package session

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/segment"
)

// Config configures the recording of one stream by one node.
type Config struct {
	// Stream is the stream id; it names the files. Required.
	Stream string
	// URL is the camera's RTSP URL, credentials included
	// (rtsp://user:pass@host/path, or in the query or path for cameras
	// that take them there). Required. It is never logged, printed or put
	// in an event as is: only its RedactURL form.
	URL string
	// Class is where the recording goes: the archive (home) or the buffer
	// (replica). Default segment.ClassArchive.
	Class segment.Class
	// Transport is "auto" (UDP, falling back to TCP), "tcp" or "udp".
	// Default "auto".
	Transport string
	// Dial, if set, opens the TCP connections to the camera (the RTSP
	// requests, and the media over TCP) instead of a net.Dialer: the
	// network seam the chaos suite cuts a node off its cameras at.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ReadTimeout bounds RTSP requests and stream inactivity: a camera that
	// sends nothing for this long is considered gone. Default 5s.
	ReadTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between reconnection
	// attempts; it doubles per failure, with jitter. Defaults 250ms and 2s:
	// short, because every second without a connection is a second lost.
	BackoffMin, BackoffMax time.Duration
	// QueueBytes is the memory the session may hold between the network and
	// the disk, which rides out disk stalls. Beyond it frames are dropped up
	// to the next keyframe and the hole is an explicit gap, never a silent
	// one. Default 64 MiB (about 2 minutes of a 4 Mbit/s camera).
	QueueBytes int64
	// Memory, when set, is shared with the other sessions of the node: the
	// queue also stops taking frames (an explicit gap as above) when all
	// the sessions together hold its limit, so a node with many cameras
	// and a slow disk, or too little CPU, never runs out of memory.
	Memory *MemoryBudget
	// SegmentDuration is passed to the segment writer (0: its default).
	SegmentDuration time.Duration
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnEvent, when set, is called for every Event, from the
	// session's goroutines; it must not block.
	OnEvent func(Event)
}

// EnsureDefaults fills in the defaults documented on each field.
func (c *Config) EnsureDefaults() {
	if c.Class == 0 {
		c.Class = segment.ClassArchive
	}
	if c.Transport == "" {
		c.Transport = "auto"
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 2 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if err := segment.ValidateStreamID(c.Stream); err != nil {
		return err
	}
	// Neither error may quote the URL: it holds the credentials, and one
	// that does not parse cannot be redacted.
	if _, err := catalog.ParseCameraURL(c.URL); err != nil {
		return fmt.Errorf("stream %s: %w", c.Stream, err)
	}
	if _, err := base.ParseURL(c.URL); err != nil {
		return fmt.Errorf("stream %s: invalid url %s: %s", c.Stream, catalog.RedactURL(c.URL), catalog.RedactSecrets(err.Error(), c.URL))
	}
	switch c.Transport {
	case "auto", "tcp", "udp":
	default:
		return fmt.Errorf("stream %s: transport must be auto, tcp or udp, not %q", c.Stream, c.Transport)
	}
	return nil
}

// EventKind says what happened to a recording session.
type EventKind int

// The kinds of Event.
const (
	// EventConnected: the camera answered and frames are flowing.
	EventConnected EventKind = iota + 1
	// EventDisconnected: the connection ended; the session reconnects.
	EventDisconnected
	// EventSourceUnreachable: several attempts in a row failed.
	EventSourceUnreachable
	// EventWriteError: the disk refused a write; the hole is a gap.
	EventWriteError
	// EventOverflow: the queue budget was exceeded during a disk stall and
	// frames were dropped up to the next keyframe. Start is the wall time
	// of the first frame dropped.
	EventOverflow
	// EventOverflowEnded: recording resumed after an overflow; the gap
	// in the index is [Start, End): Start the first frame dropped, End the
	// keyframe recording resumed at.
	EventOverflowEnded
)

func (k EventKind) String() string {
	switch k {
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventSourceUnreachable:
		return "source_unreachable"
	case EventWriteError:
		return "write_error"
	case EventOverflow:
		return "overflow"
	case EventOverflowEnded:
		return "overflow_ended"
	}
	return "unknown"
}

// Event is something a VMS or an operator wants to know about one
// recording. Message never contains credentials.
type Event struct {
	Kind    EventKind
	Stream  string
	Time    time.Time
	Message string
	// Start is when the hole began: for EventDisconnected the end of the
	// last frame (or the failed attempt's start), for EventConnected the
	// start of the hole the first frame closes (the outage, or the
	// session's start).
	Start time.Time
	// End is the end of the hole an EventOverflowEnded closes.
	End time.Time
	// Err is the disk's error of an EventWriteError (Message is its text):
	// the node tells a failing disk (an errno such as EIO or ENOSPC) from
	// other refusals by it.
	Err error
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	Connected bool // frames are flowing
	// Playing says the camera answered PLAY; until Connected, the session
	// waits for its first keyframe (a long GOP can take seconds).
	Playing     bool
	Frames      uint64 // frames handed to the writer
	Bytes       uint64 // payload bytes handed to the writer
	Dropped     uint64 // frames dropped (queue overflow or no writer)
	WriteErrors uint64
	Reconnects  uint64
	// Stalls counts the times the camera, still connected, sent no video
	// for 1 to 2 s (at a frame rate of 4 or more a second): too short to
	// end a segment, so the last frame is held over the hole; the log names
	// each one. A stall of more than 2 s is a gap: a SOURCE gap (a
	// recorded source outage) when no RTP packet was lost over it, since
	// the camera then sent nothing; SYSTEM otherwise.
	Stalls      uint64
	QueuedBytes int64
	// Backlog, while frames wait in the queue for a slow or stalled disk,
	// is the time of the newest frame the writer has taken (the stored
	// recording can reach about that far; what follows is in memory, to
	// be written); the zero time when nothing waits. Backfill leaves the
	// time after it to the session rather than copying a peer's segments
	// over video this node will write itself.
	Backlog   time.Time
	LastFrame time.Time // wall-clock time of the newest frame received
	// LastReceived is when (by this node's clock) the newest frame arrived.
	LastReceived time.Time
	LastError    string // redacted
	// Failure classifies LastError while the session does not record
	// (FailureNone once frames flow again); FailingSince is when the
	// current failure began, ConnectedSince when frames began to flow.
	Failure        Failure
	FailingSince   time.Time
	ConnectedSince time.Time
}

// Add sums the counters of o into s (Connected and the other states are
// left as they are).
func (s *Stats) Add(o Stats) {
	s.Frames += o.Frames
	s.Bytes += o.Bytes
	s.Dropped += o.Dropped
	s.WriteErrors += o.WriteErrors
	s.Reconnects += o.Reconnects
	s.Stalls += o.Stalls
}

// Session records one stream from its camera into a segment.Store: it
// connects, depacketizes, stamps frames with wall-clock time, and hands them
// through a bounded queue to one segment.Writer; it reconnects with backoff
// until its context ends, and records the time the camera could not be
// reached as a source outage.
type Session struct {
	cfg   Config
	store *segment.Store
	log   *slog.Logger

	queue  *itemQueue
	queued atomic.Int64
	// taken is the time (unix ns, Frame.Wall) of the newest frame the
	// write loop took off the queue, written or not (Stats.Backlog).
	taken atomic.Int64
	// writerBroken is set by the write loop when it could not open a writer;
	// the producer then asks for a new one at the next keyframe.
	writerBroken atomic.Bool
	// lastWriteErr is when (unix ns, the session's clock) the disk last
	// refused a write of this session. The writer buffers a part's frames
	// and writes them at its end, so a failing disk fails about once a
	// part: within writeErrorHold of a failure the session does not
	// record.
	lastWriteErr atomic.Int64

	// producer state, shared by the RTSP callbacks of one connection (they
	// may run on one goroutine per media).
	pmu          sync.Mutex
	dropping     bool
	dropStart    time.Time
	lastFrame    time.Time
	lastRecv     time.Time
	connected    bool
	playing      bool
	lastVideo    time.Time     // wall time of the last video frame of this connection
	videoEvery   time.Duration // its usual interval (a running mean)
	lostAtVideo  uint64        // rtpLost at the last video frame
	outageSince  time.Time     // zero: no outage pending
	started      time.Time     // when Run began: the hole before the first frame starts there
	failedInARow int
	lastErr      string
	failure      Failure   // of lastErr, while not connected
	failingSince time.Time // when failure began
	connSince    time.Time // when frames began to flow
	// classReq is 1 + the class SetClass asked for, 0 when none is
	// pending: the write loop hands it to its writer, which switches at
	// the next keyframe, so the two segments meet exactly.
	classReq atomic.Int32

	frames, bytes, dropped, writeErrors, reconnects, stalls atomic.Uint64
	// rtpLost counts the RTP packets gortsplib found missing (gaps in
	// the sequence numbers), over every connection.
	rtpLost atomic.Uint64
}

// controlHeadroom is the room kept in the queue for open/close items, so
// that they never block behind a full queue.
const controlHeadroom = 64

// item is one entry of the queue between the network and the disk.
type item struct {
	open   *segment.WriterConfig // close the current writer, open this one
	close  bool                  // close the current writer
	outage *segment.Interval     // record that the camera was unreachable
	frame  segment.Frame
}

func (it item) size() int64 { return int64(len(it.frame.Payload)) }

// New validates cfg and returns a session ready to Run.
func New(store *segment.Store, cfg Config) (*Session, error) {
	cfg.EnsureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Session{
		cfg:   cfg,
		store: store,
		log:   cfg.Logger.With("stream", cfg.Stream, "url", catalog.RedactURL(cfg.URL)),
		queue: newItemQueue(),
	}, nil
}

// OpenOutage returns the start of the camera outage in progress, if the
// session cannot reach its camera now. The outage is recorded in the store
// only once the camera is back; until then the API reports [since, now) as
// a source gap from here.
func (s *Session) OpenOutage() (since time.Time, ok bool) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.outageSince, !s.outageSince.IsZero()
}

// SetClass changes where the session records from its next keyframe on:
// the archive (home) or the buffer (replica). The segment in progress
// goes on in the old class until then, so a promotion loses no frame.
func (s *Session) SetClass(c segment.Class) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.cfg.Class = c // for the writers opened from now on
	s.classReq.Store(int32(c) + 1)
}

// Class returns the class the session records into now (or will, from the
// next keyframe, after SetClass).
func (s *Session) Class() segment.Class {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.cfg.Class
}

// Recording reports whether frames reach the disk: connected, a writer
// open, not dropping. A replica that stops being placed here waits for
// its successors to say this before it stops.
func (s *Session) Recording() bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	failedAt := s.lastWriteErr.Load()
	failing := failedAt != 0 && s.cfg.Now().Sub(time.Unix(0, failedAt)) < writeErrorHold
	return s.connected && s.frames.Load() > 0 && !s.dropping && !s.writerBroken.Load() && !failing
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() Stats {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return Stats{
		Connected:    s.connected,
		Playing:      s.playing,
		Frames:       s.frames.Load(),
		Bytes:        s.bytes.Load(),
		Dropped:      s.dropped.Load(),
		WriteErrors:  s.writeErrors.Load(),
		Reconnects:   s.reconnects.Load(),
		Stalls:       s.stalls.Load(),
		QueuedBytes:  s.queued.Load(),
		Backlog:      s.backlog(),
		LastFrame:    s.lastFrame,
		LastReceived: s.lastRecv,
		LastError:    s.lastErr,

		Failure:        s.failure,
		FailingSince:   s.failingSince,
		ConnectedSince: s.connSince,
	}
}

// backlog is Stats.Backlog. Before the writer has taken any frame it is
// the Unix epoch: everything is still to be written.
func (s *Session) backlog() time.Time {
	if s.queued.Load() <= 0 {
		return time.Time{}
	}
	return time.Unix(0, s.taken.Load()).UTC()
}

func (s *Session) emit(kind EventKind, msg string) {
	s.emitAt(kind, msg, time.Time{})
}

func (s *Session) emitAt(kind EventKind, msg string, start time.Time) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(Event{Kind: kind, Stream: s.cfg.Stream, Time: s.cfg.Now(), Message: msg, Start: start})
	}
}

// writeErrorHold is how long after a refused write a session does not
// count as recording: more than a part (1 s) and a keyframe interval.
const writeErrorHold = 3 * time.Second

// emitWriteError reports a write the disk refused.
func (s *Session) emitWriteError(err error) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(Event{Kind: EventWriteError, Stream: s.cfg.Stream, Time: s.cfg.Now(), Message: err.Error(), Err: err})
	}
}

// Run records until ctx ends, then closes the open segment and returns nil.
// It returns an error only for a configuration that can never work.
func (s *Session) Run(ctx context.Context) error {
	s.pmu.Lock()
	s.started = s.cfg.Now()
	s.pmu.Unlock()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()
	defer func() {
		s.queue.close()
		<-writerDone
	}()

	backoff := s.cfg.BackoffMin
	var warnedAt time.Time // of the last retry logged at warning level
	var warnedErr string
	for {
		start := s.cfg.Now()
		framesBefore := s.frames.Load()
		err := s.connectAndRecord(ctx)
		s.enqueueClose()
		if ctx.Err() != nil {
			return nil
		}
		msg := "connection ended"
		if err != nil {
			msg = catalog.RedactSecrets(explainRTSPError(err.Error()), s.cfg.URL)
		}
		gotFrames := s.frames.Load() > framesBefore

		s.pmu.Lock()
		s.connected, s.playing = false, false
		s.lastVideo, s.videoEvery = time.Time{}, 0
		s.lastErr = msg
		if f := classifyFailure(err); f != s.failure {
			s.failure, s.failingSince = f, s.cfg.Now()
		}
		opened := s.outageSince.IsZero() // this failure begins a hole
		if opened {
			// The camera is gone from the end of its last frame, or, when
			// it never sent one, from the start of this attempt.
			if gotFrames && !s.lastFrame.IsZero() {
				s.outageSince = s.lastFrame
			} else {
				s.outageSince = start
			}
		}
		if gotFrames {
			s.failedInARow = 0
			backoff = s.cfg.BackoffMin
		} else {
			s.failedInARow++
		}
		failed := s.failedInARow
		since := s.outageSince
		s.pmu.Unlock()

		s.reconnects.Add(1)
		// A camera that stays away is retried every couple of seconds for
		// as long as it is gone: the first three failures and any new error
		// are warnings, then one every 10 minutes; the rest are debug.
		now := s.cfg.Now()
		if failed <= 3 || msg != warnedErr || now.Sub(warnedAt) >= retryWarnEvery {
			warnedAt, warnedErr = now, msg
			if failed > 3 {
				s.log.Warn("camera still unreachable", "err", msg, "attempts", failed, "since", since, "retry_in", backoff)
			} else {
				s.log.Warn("camera connection ended", "err", msg, "retry_in", backoff)
			}
		} else {
			s.log.Debug("camera connection ended", "err", msg, "attempts", failed, "retry_in", backoff)
		}
		if opened { // one event per hole, not per retry
			s.emitAt(EventDisconnected, msg, since)
		}
		if failed == 3 {
			s.emit(EventSourceUnreachable, fmt.Sprintf("3 attempts in a row failed: %s", msg))
		}

		// Jitter of ±20% keeps a fleet of sessions from reconnecting in step.
		d := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if !gotFrames {
			backoff = min(backoff*2, s.cfg.BackoffMax)
		}
	}
}

// retryWarnEvery is how often a camera that stays unreachable is logged
// as a warning.
const retryWarnEvery = 10 * time.Minute

// explainRTSPError rewrites gortsplib's answer to a server that does not
// speak RTSP ("expected 'RTSP/1.0', got [72 84 84 80 ...]", the bytes in
// decimal) into what an operator can act on: the wrong port or protocol,
// with what the server said, as text.
func explainRTSPError(msg string) string {
	const marker = "expected 'RTSP/1.0', got ["
	i := strings.Index(msg, marker)
	if i < 0 {
		return msg
	}
	j := strings.IndexByte(msg[i+len(marker):], ']')
	if j < 0 {
		return msg
	}
	var got []byte
	for _, f := range strings.Fields(msg[i+len(marker) : i+len(marker)+j]) {
		b, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			return msg
		}
		got = append(got, byte(b))
	}
	what := "the server does not speak RTSP"
	if bytes.HasPrefix(got, []byte("HTTP/")) {
		what = "an HTTP server answered, not an RTSP one"
	}
	return fmt.Sprintf("%s%s (it said %q; wrong port or scheme?)", msg[:i], what, got)
}

// credentialsStayHome returns a dialer that connects only to the camera's
// own address: gortsplib follows a DESCRIBE redirect to any host and hands
// it the URL's credentials (in Basic auth if asked), so a redirect, or
// anyone answering in the camera's place, would collect them.
func credentialsStayHome(u *base.URL, dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
	}
	home := net.JoinHostPort(u.Hostname(), port)
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if address != home {
			return nil, fmt.Errorf("the camera redirected to %s: refused, its credentials are for %s only", address, home)
		}
		return dial(ctx, network, address)
	}
}

// connectAndRecord runs one RTSP connection until it fails or ctx ends.
func (s *Session) connectAndRecord(ctx context.Context) error {
	u, err := base.ParseURL(s.cfg.URL)
	if err != nil {
		return err
	}
	c := &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		ReadTimeout: s.cfg.ReadTimeout,
		// A 4-8 Mbit/s camera bursts a whole keyframe at once; the kernel
		// default (~200 KiB) drops packets of it when the node is busy.
		UDPReadBufferSize: 4 << 20,
	}
	dial := s.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	c.DialContext = dial
	if u.User != nil {
		c.DialContext = credentialsStayHome(u, dial)
	}
	// gortsplib's defaults print these with the standard logger, as plain
	// text outside the node's structured log.
	// Many cameras ask for TCP on every connect: not news at info level.
	c.OnTransportSwitch = func(err error) { s.log.Debug("RTSP transport switched", "reason", err.Error()) }
	c.OnPacketsLost = func(lost uint64) {
		s.rtpLost.Add(lost)
		s.log.Debug("RTP packets lost", "count", lost)
	}
	c.OnDecodeError = func(err error) { s.log.Debug("RTP decode error", "err", err.Error()) }
	switch s.cfg.Transport {
	case "tcp":
		t := gortsplib.TransportTCP
		c.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		c.Transport = &t
	}
	if err := c.Start2(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, _, err := c.Describe(u)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	conn, medias, err := newConnection(s, c, desc)
	if err != nil {
		return err
	}
	for _, m := range medias {
		if _, err := c.Setup(desc.BaseURL, m, 0, 0); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	conn.register()
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	s.pmu.Lock()
	s.playing = true
	s.pmu.Unlock()
	s.log.Info("camera connected", "tracks", conn.describe())
	return c.Wait()
}

// onFrame is called by a connection for every frame. canOpen says the frame
// is a random access point, where a new writer may start.
func (s *Session) onFrame(cn *connection, f segment.Frame, canOpen bool) {
	s.pmu.Lock()
	defer s.pmu.Unlock()

	if !s.connected {
		s.connected = true
		s.failure, s.failingSince, s.connSince = FailureNone, time.Time{}, s.cfg.Now()
		start := s.outageSince
		if start.IsZero() {
			start = s.started
		}
		s.emitAt(EventConnected, "frames flowing", start)
	}
	if !s.outageSince.IsZero() && f.Wall.After(s.outageSince) {
		// Written by the write loop: no disk I/O on the packet path.
		s.queue.push(item{outage: &segment.Interval{Start: s.outageSince, End: f.Wall}})
		s.outageSince = time.Time{}
		s.failedInARow = 0
	}
	s.lastFrame = f.Wall
	s.lastRecv = s.cfg.Now()
	if f.Track == 0 {
		lost := s.rtpLost.Load()
		if d := s.noteVideoInterval(f.Wall); d > silenceIsOutage && lost == s.lostAtVideo {
			// Connected, and no RTP packet went missing on the way (the
			// sequence numbers run on): the camera sent nothing, and the
			// hole the writer leaves (it ends the segment) is the
			// camera's, a SOURCE gap. With packets lost it stays SYSTEM:
			// sent, not stored. (Found by the chaos suite's camera-flap:
			// a camera paused for 2.1 s, connected throughout, was a
			// SYSTEM gap; one paused past the read timeout was SOURCE.)
			s.queue.push(item{outage: &segment.Interval{Start: f.Wall.Add(-d), End: f.Wall}})
			s.log.Info("camera sent nothing while connected: a source gap", "for", d.Round(time.Millisecond), "from", f.Wall.Add(-d))
		}
		s.lostAtVideo = lost
	}

	// A writer is (re)opened only at a random access point: on the first
	// keyframe of a connection, after an overflow, after new codec
	// parameters, or after the disk refused to open a file.
	needOpen := !cn.writerOpen || cn.paramsChanged || s.dropping || s.writerBroken.Load()
	if needOpen {
		if !canOpen {
			if s.dropping || cn.writerOpen {
				s.dropped.Add(1)
			}
			return
		}
		if s.dropping && (s.queued.Load() > s.cfg.QueueBytes/2 || s.cfg.Memory.Used() > s.cfg.Memory.Limit()*3/4) {
			s.dropped.Add(1)
			return // hysteresis: let the disk catch up first
		}
		if s.dropping {
			s.log.Warn("recording resumed after queue overflow", "lost_from", s.dropStart, "lost_to", f.Wall)
			if s.cfg.OnEvent != nil {
				s.cfg.OnEvent(Event{Kind: EventOverflowEnded, Stream: s.cfg.Stream, Time: s.cfg.Now(), Start: s.dropStart, End: f.Wall,
					Message: fmt.Sprintf("recording resumed after the queue overflow; the gap is %s to %s", s.dropStart.Format(time.RFC3339Nano), f.Wall.Format(time.RFC3339Nano))})
			}
			s.dropping = false
		}
		s.writerBroken.Store(false)
		cfg := segment.WriterConfig{
			Stream:          s.cfg.Stream,
			Class:           s.cfg.Class,
			Origin:          segment.OriginLive,
			Tracks:          cn.tracks(),
			SegmentDuration: s.cfg.SegmentDuration,
		}
		s.queue.push(item{open: &cfg})
		cn.writerOpen = true
		cn.paramsChanged = false
	}

	it := item{frame: f}
	full := s.queued.Load()+it.size() > s.cfg.QueueBytes || s.queue.len() >= maxQueueItems-controlHeadroom
	if full || !s.cfg.Memory.take(it.size()) {
		s.dropping = true
		s.dropStart = f.Wall
		s.dropped.Add(1)
		if full {
			s.log.Error("disk too slow: queue budget exceeded, dropping until the next keyframe",
				"queue_bytes", s.queued.Load(), "budget", s.cfg.QueueBytes)
			s.emitAt(EventOverflow, fmt.Sprintf("queue budget of %d bytes exceeded; a gap starts at %s", s.cfg.QueueBytes, f.Wall.Format(time.RFC3339Nano)), f.Wall)
		} else {
			s.log.Error("recording falls behind: the node's queue memory is full, dropping until the next keyframe",
				"queue_bytes", s.queued.Load(), "node_queue_bytes", s.cfg.Memory.Used(), "node_budget", s.cfg.Memory.Limit())
			s.emitAt(EventOverflow, fmt.Sprintf("the node's queue memory of %d bytes (all cameras) is full; a gap starts at %s", s.cfg.Memory.Limit(), f.Wall.Format(time.RFC3339Nano)), f.Wall)
		}
		return
	}
	s.queued.Add(it.size())
	s.queue.push(it)
}

// noteVideoInterval counts and logs a stall: video that stopped for 1 to 2 s
// on a connection that stayed up. Longer holes end the segment (the
// writer's limit is 2 s) and are gaps; shorter ones are within what
// variable frame rate cameras do.
//
// It returns the interval since the previous video frame of the
// connection (0 for its first).
func (s *Session) noteVideoInterval(wall time.Time) time.Duration {
	last := s.lastVideo
	s.lastVideo = wall
	if last.IsZero() {
		return 0
	}
	d := wall.Sub(last)
	if d >= time.Second && d <= 2*time.Second && s.videoEvery > 0 && s.videoEvery <= 250*time.Millisecond {
		s.stalls.Add(1)
		s.log.Warn("camera sent no video while connected; the last frame is held over the hole",
			"for", d.Round(time.Millisecond), "from", last, "usual_interval", s.videoEvery.Round(time.Millisecond))
	}
	if d > 0 && d < time.Second {
		if s.videoEvery == 0 {
			s.videoEvery = d
		} else {
			s.videoEvery += (d - s.videoEvery) / 16
		}
	}
	return d
}

// silenceIsOutage is the longest hole in a connected camera's video that
// the segment writer holds the last frame over (its maxJump): a longer
// one ends the segment and is a gap.
const silenceIsOutage = 2 * time.Second

// MemoryBudget is the memory the recording queues of one node may hold
// together. It is safe for concurrent use; a nil budget has no limit.
type MemoryBudget struct {
	limit int64
	used  atomic.Int64
}

// NewMemoryBudget returns a budget of limit bytes.
func NewMemoryBudget(limit int64) *MemoryBudget { return &MemoryBudget{limit: limit} }

// Limit is the budget's size in bytes.
func (b *MemoryBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Used is the bytes held now.
func (b *MemoryBudget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// take reserves n bytes, or reports false when they do not fit.
func (b *MemoryBudget) take(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes taken.
func (b *MemoryBudget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

func (s *Session) enqueueClose() {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.queue.push(item{close: true})
}

// writeLoop owns the segment.Writer: all disk I/O of the session happens
// here, so a stalled disk stalls this goroutine only and the queue absorbs
// the stream meanwhile.
func (s *Session) writeLoop() {
	var w *segment.Writer
	closeWriter := func() {
		if w == nil {
			return
		}
		if err := w.Close(); err != nil {
			s.writeErrors.Add(1)
			s.lastWriteErr.Store(s.cfg.Now().UnixNano())
			s.log.Error("closing segment", "err", err)
			s.emitWriteError(err)
		}
		w = nil
	}
	var lastErrLog time.Time
	for {
		it, ok := s.queue.pop()
		if !ok {
			break
		}
		switch {
		case it.outage != nil:
			if err := s.store.AddSourceOutage(s.cfg.Stream, *it.outage); err != nil {
				s.log.Error("recording source outage", "err", err)
			} else {
				s.log.Info("camera back", "unreachable_for", it.outage.End.Sub(it.outage.Start).Round(time.Millisecond))
			}
		case it.close:
			closeWriter()
		case it.open != nil:
			closeWriter()
			nw, err := s.store.NewWriter(*it.open)
			if err != nil {
				s.writeErrors.Add(1)
				s.lastWriteErr.Store(s.cfg.Now().UnixNano())
				s.writerBroken.Store(true)
				s.log.Error("opening segment writer", "err", err)
				s.emitWriteError(err)
				continue
			}
			w = nw
		default:
			s.taken.Store(it.frame.Wall.UnixNano())
			s.queued.Add(-it.size())
			s.cfg.Memory.give(it.size())
			if c := s.classReq.Swap(0); c != 0 && w != nil {
				if err := w.SetClass(segment.Class(c - 1)); err != nil {
					s.log.Error("changing the segment class", "err", err)
				}
			}
			if w == nil {
				s.dropped.Add(1)
				continue
			}
			if err := w.WriteOwnedFrame(it.frame); err != nil { // payloads are fresh per frame (tracks.go)
				s.writeErrors.Add(1)
				s.lastWriteErr.Store(s.cfg.Now().UnixNano())
				if now := time.Now(); now.Sub(lastErrLog) > time.Second {
					lastErrLog = now
					s.log.Error("writing frame", "err", err)
					s.emitWriteError(err)
				}
				continue
			}
			s.frames.Add(1)
			s.bytes.Add(uint64(len(it.frame.Payload)))
		}
	}
	closeWriter()
}

// connection is the state of one RTSP connection: the selected tracks and
// their depacketizers.
type connection struct {
	s      *Session
	client *gortsplib.Client
	clock  *wallClock

	mu            sync.Mutex // serialises the per-media callbacks
	video         *videoTrack
	audio         *audioTrack
	videoSR       senderReports
	audioSR       senderReports
	writerOpen    bool
	paramsChanged bool
}

// newConnection selects the first supported video and audio media of desc.
func newConnection(s *Session, c *gortsplib.Client, desc *description.Session) (*connection, []*description.Media, error) {
	cn := &connection{s: s, client: c, clock: newWallClock(s.cfg.Now)}
	var medias []*description.Media
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			if cn.video == nil {
				if v, err := newVideoTrack(m, f); err == nil && v != nil {
					cn.video = v
					medias = append(medias, m)
					break
				}
			}
			if cn.audio == nil {
				if a, err := newAudioTrack(m, f); err == nil && a != nil {
					cn.audio = a
					medias = append(medias, m)
					break
				}
			}
		}
	}
	if len(medias) == 0 {
		return nil, nil, errNoSupportedTrack
	}
	return cn, medias, nil
}

func (cn *connection) describe() string {
	var b bytes.Buffer
	if cn.video != nil {
		b.WriteString(cn.video.codecName())
	}
	if cn.audio != nil {
		if b.Len() > 0 {
			b.WriteString("+")
		}
		b.WriteString(cn.audio.name)
	}
	return b.String()
}

// tracks is the writer configuration for the current codec parameters.
func (cn *connection) tracks() []segment.Track {
	var t []segment.Track
	if cn.video != nil {
		t = append(t, segment.Track{ClockRate: 90000, Codec: cn.video.codec()})
	}
	if cn.audio != nil {
		t = append(t, segment.Track{ClockRate: cn.audio.clockRate, Codec: cn.audio.codec})
	}
	return t
}

func (cn *connection) register() {
	if v := cn.video; v != nil {
		cn.client.OnPacketRTP(v.media, v.format, func(pkt *rtp.Packet) { cn.onVideo(pkt) })
	}
	if a := cn.audio; a != nil {
		cn.client.OnPacketRTP(a.media, a.format, func(pkt *rtp.Packet) { cn.onAudio(pkt) })
	}
	cn.client.OnPacketRTCPAny(func(m *description.Media, p rtcp.Packet) {
		switch {
		case cn.video != nil && m == cn.video.media:
			cn.videoSR.observe(p)
		case cn.audio != nil && m == cn.audio.media:
			cn.audioSR.observe(p)
		}
	})
}

func (cn *connection) onVideo(pkt *rtp.Packet) {
	v := cn.video
	cn.mu.Lock()
	defer cn.mu.Unlock()
	// The timestamp decoder must see every packet: it starts on the first
	// one whose PTS equals its DTS (an IDR or parameter-set packet), which
	// is rarely the packet that completes an access unit.
	pts, ptsOK := cn.client.PacketPTS2(v.media, pkt)
	au, err := v.decode(pkt)
	if err != nil || au == nil || !ptsOK {
		return
	}
	ntp, ntpOK := cn.videoSR.wall(pkt.SSRC, pkt.Timestamp, 90000)
	frame, random, changed, ok := v.frame(au, pts)
	if !ok {
		return
	}
	if changed && cn.writerOpen {
		cn.paramsChanged = true
	}
	frame.Track = 0
	frame.Wall = cn.clock.wall(ptsDuration(pts, 90000), ntp, ntpOK)
	cn.s.onFrame(cn, frame, random)
}

func (cn *connection) onAudio(pkt *rtp.Packet) {
	a := cn.audio
	cn.mu.Lock()
	defer cn.mu.Unlock()
	pts, ptsOK := cn.client.PacketPTS2(a.media, pkt)
	if cn.video != nil && !cn.writerOpen {
		return // nothing to record before the first video keyframe
	}
	frames, err := a.decode(pkt)
	if err != nil || len(frames) == 0 || !ptsOK {
		return
	}
	ntp, ntpOK := cn.audioSR.wall(pkt.SSRC, pkt.Timestamp, a.clockRate)
	track := 0
	if cn.video != nil {
		track = 1
	}
	for i, payload := range frames {
		p := pts + int64(i)*a.samplesPerFrame
		f := segment.Frame{
			Track:  track,
			PTS:    p,
			DTS:    p,
			Random: true,
			// A copy: AAC and Opus frames are slices of the packet's read
			// buffer (1.5 KB for UDP), which the writer would otherwise
			// keep whole until the part is written.
			Payload: clone(payload),
		}
		if cn.video != nil {
			// Audio follows the video's clock so the tracks stay in sync.
			f.Wall = cn.clock.wall(ptsDuration(p, a.clockRate), ntp, false)
		} else {
			f.Wall = cn.clock.wall(ptsDuration(p, a.clockRate), ntp.Add(ptsDuration(int64(i)*a.samplesPerFrame, a.clockRate)), ntpOK)
		}
		// Without video, every audio frame is a random access point.
		cn.s.onFrame(cn, f, cn.video == nil)
	}
}
