package camsim

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
)

// ErrClosed is returned by operations on a closed Server.
var ErrClosed = errors.New("camsim: server closed")

// Server is an RTSP server of simulated cameras.
type Server struct {
	cfg     Config
	rtsp    *gortsplib.Server
	cameras []*Camera

	mu      sync.Mutex
	addr    string // listening address, known after Start
	started bool
	closed  bool
}

// New checks cfg and prepares a server; Start makes it listen.
func New(cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Build one synthesiser now so a bitrate too low for the resolution is
	// reported before anything listens.
	if _, err := h264synth.New(cfg.videoParams()); err != nil {
		return nil, fmt.Errorf("camsim: %w", err)
	}
	s := &Server{cfg: cfg}
	s.cameras = make([]*Camera, cfg.Cameras)
	for i := range s.cameras {
		s.cameras[i] = newCamera(s, i)
	}
	if cfg.SendLogDir != "" {
		if err := os.MkdirAll(cfg.SendLogDir, 0o755); err != nil {
			return nil, fmt.Errorf("camsim: send log: %w", err)
		}
		for i, c := range s.cameras {
			l, next, err := openSendLog(cfg.SendLogDir, i, cfg.FPS, cfg.GOP, cfg.Logger)
			if err != nil {
				for _, c := range s.cameras[:i] {
					c.slog.close()
				}
				return nil, err
			}
			c.slog = l
			c.seq.Store(next)
		}
	}
	s.rtsp = &gortsplib.Server{
		Handler:        &handler{s: s},
		RTSPAddress:    cfg.Listen,
		UDPRTPAddress:  cfg.UDPRTPAddress,
		UDPRTCPAddress: cfg.UDPRTCPAddress,
		// gortsplib v4.16.2 writes the NTP fraction of its sender reports
		// in nanoseconds, not in 1/2^32 s as RFC 3550 says; cameras send the
		// standard format, and so do we (camera.sendReports).
		DisableRTCPSenderReports: true,
		// Room for a second of catch-up frames after a scheduling stall
		// (feed.tick) at high bitrates; the default 256 packets is about
		// 18 frames at 4 Mbit/s.
		WriteQueueSize: 2048,
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			if err == nil {
				s.mu.Lock()
				s.addr = l.Addr().String()
				s.mu.Unlock()
			}
			return l, err
		},
	}
	return s, nil
}

// Start listens and starts every camera.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("camsim: server already started")
	}
	s.started = true
	s.mu.Unlock()
	if err := s.rtsp.Start(); err != nil {
		return fmt.Errorf("camsim: listen %s: %w", s.cfg.Listen, err)
	}
	for _, c := range s.cameras {
		if err := c.Start(); err != nil {
			s.Close()
			return err
		}
	}
	s.cfg.Logger.Info("camsim: serving", "addr", s.Addr(), "cameras", len(s.cameras),
		"size", fmt.Sprintf("%dx%d", s.cfg.Width, s.cfg.Height), "fps", s.cfg.FPS,
		"gop", s.cfg.GOP, "bitrate", s.cfg.Bitrate, "audio", s.cfg.Audio)
	return nil
}

// Close stops every camera and the server. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	for _, c := range s.cameras {
		c.Stop()
	}
	if started {
		s.rtsp.Close()
	}
	for _, c := range s.cameras {
		c.slog.close()
	}
}

// Config returns the configuration with defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Addr returns the address the server listens on (host:port), or "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// NumCameras returns the number of cameras.
func (s *Server) NumCameras() int { return len(s.cameras) }

// Camera returns camera n, or nil when n is out of range.
func (s *Server) Camera(n int) *Camera {
	if n < 0 || n >= len(s.cameras) {
		return nil
	}
	return s.cameras[n]
}

// URL returns the RTSP URL of camera n, with the credentials when the
// server has them. An unspecified listening IP (0.0.0.0, ::) becomes
// 127.0.0.1.
func (s *Server) URL(n int) string {
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		host, port, _ = net.SplitHostPort(s.cfg.Listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "rtsp", Host: net.JoinHostPort(host, port), Path: "/" + cameraPath(n)}
	if s.cfg.User != "" {
		u.User = url.UserPassword(s.cfg.User, s.cfg.Pass)
	}
	u.RawQuery = s.cfg.Query
	return u.String()
}

func cameraPath(n int) string { return "cam/" + strconv.Itoa(n) }

// cameraOf returns the camera a request path names ("cam/N" with optional
// trailing segments such as a track control), or nil.
func (s *Server) cameraOf(path string) *Camera {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 2 || parts[0] != "cam" {
		return nil
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || strconv.Itoa(n) != parts[1] {
		return nil
	}
	return s.Camera(n)
}

// handler answers RTSP requests for the cameras.
type handler struct {
	s *Server
}

// OnRequest drops the connection of any request for an unreachable camera
// before it is answered: the client sees the connection close, as when a
// camera vanishes from the network.
func (h *handler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if req.URL == nil {
		return
	}
	if c := h.s.cameraOf(req.URL.Path); c != nil && c.Unreachable() {
		sc.NetConn().Close()
	}
}

// resolve checks credentials and the camera of a request. It returns the
// camera's stream, or the failure response and error to hand gortsplib.
func (h *handler) resolve(sc *gortsplib.ServerConn, req *base.Request, path string) (*Camera, *gortsplib.ServerStream, *base.Response, error) {
	if h.s.cfg.User != "" && !sc.VerifyCredentials(req, h.s.cfg.User, h.s.cfg.Pass) {
		return nil, nil, &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	c := h.s.cameraOf(path)
	if c == nil {
		return nil, nil, &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	if c.Unreachable() {
		// OnRequest has closed the connection already; make sure.
		return nil, nil, &base.Response{StatusCode: base.StatusServiceUnavailable}, errUnreachable
	}
	st := c.currentStream()
	if st == nil {
		return nil, nil, &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	return c, st, &base.Response{StatusCode: base.StatusOK}, nil
}

var errUnreachable = errors.New("camsim: camera unreachable")

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if h.s.cfg.Query != "" && !sameQuery(ctx.Query, h.s.cfg.Query) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	_, st, res, err := h.resolve(ctx.Conn, ctx.Request, ctx.Path)
	return res, st, err
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c, st, res, err := h.resolve(ctx.Conn, ctx.Request, ctx.Path)
	if st != nil {
		if err := c.addSession(ctx.Session, st); err != nil {
			return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
		}
	}
	return res, st, err
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		if c.Unreachable() {
			return &base.Response{StatusCode: base.StatusServiceUnavailable}, errUnreachable
		}
		c.setPlaying(ctx.Session, true)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnPause implements gortsplib.ServerHandlerOnPause.
func (h *handler) OnPause(ctx *gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		c.setPlaying(ctx.Session, false)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		c.removeSession(ctx.Session)
		h.s.cfg.Logger.Debug("camsim: session closed", "camera", c.n, "err", ctx.Error)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError:
// a packet was dropped for a slow session (without this handler gortsplib
// logs every one to the standard logger).
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	if c, ok := ctx.Session.UserData().(*Camera); ok {
		if c.writeErrs.Add(1) == 1 {
			h.s.cfg.Logger.Warn("camsim: a reader is too slow, packets dropped", "camera", c.n, "err", ctx.Error)
		}
	}
}

// sameQuery reports whether two query strings carry the same parameters,
// in any order.
func sameQuery(a, b string) bool {
	qa, err := url.ParseQuery(a)
	if err != nil {
		return false
	}
	qb, _ := url.ParseQuery(b)
	return maps.EqualFunc(qa, qb, slices.Equal)
}
