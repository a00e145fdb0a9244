package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
	"github.com/understudy-nvr/understudy/segment"
)

// maxRequestBytes bounds a request message, after decompression: the
// largest real one (a stream with a 2 KiB URL and its labels) is a few KiB.
const maxRequestBytes = 1 << 20

// zstdDecoder lets connect pool a *zstd.Decoder: connect closes its
// decompressors after each message, while a zstd.Decoder must not be used
// after its real Close. Close is therefore a no-op.
type zstdDecoder struct{ *zstd.Decoder }

func (zstdDecoder) Close() error { return nil }

// compressionOptions are the handler options of every service: zstd beside
// the built-in gzip, and the bound on a request message after
// decompression.
func compressionOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(maxRequestBytes),
		connect.WithCompression("zstd",
			func() connect.Decompressor {
				d, _ := zstd.NewReader(nil)
				return zstdDecoder{d}
			},
			func() connect.Compressor {
				e, _ := zstd.NewWriter(nil)
				return e
			}),
	}
}

// recordingHandler serves RecordingService; the responses of ExportClip
// and ReadSegment are video, which gzip or zstd cannot shrink: compressing
// them cost about 9 CPU-seconds per GB and held backfill between peers to
// 9 MB/s, so those two never compress their responses (requests still
// may be compressed).
func recordingHandler(a api, opts []connect.HandlerOption) (string, http.Handler) {
	path, h := understudyv1connect.NewRecordingServiceHandler(a, opts...)
	_, video := understudyv1connect.NewRecordingServiceHandler(a, append(slices.Clone(opts), connect.WithCompressMinBytes(math.MaxInt))...)
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case understudyv1connect.RecordingServiceExportClipProcedure, understudyv1connect.RecordingServiceReadSegmentProcedure:
			video.ServeHTTP(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// ServiceNames are the services the API serves (and reflection lists).
var ServiceNames = []string{
	understudyv1connect.StreamServiceName,
	understudyv1connect.RecordingServiceName,
	understudyv1connect.ClusterServiceName,
}

// Handler returns the node's HTTP handler: Connect, gRPC and gRPC-Web for
// the three services (bearer-token auth), gRPC health and server
// reflection (open: they reveal nothing about streams or recordings), and
// the plain endpoints: GET /v1/export (read role), /metrics (read role),
// /healthz and /readyz (open), /debug/pprof/ (admin role).
func (s *Server) Handler() http.Handler {
	auth := s.auth
	opts := append(compressionOptions(), connect.WithInterceptors(auth.Interceptor()),
		connect.WithCodec(strictJSON{}), connect.WithCodec(strictJSON{"json; charset=utf-8"}))
	a := api{s}
	mux := http.NewServeMux()
	for _, svc := range []func() (string, http.Handler){
		func() (string, http.Handler) { return understudyv1connect.NewStreamServiceHandler(a, opts...) },
		func() (string, http.Handler) { return recordingHandler(a, opts) },
		func() (string, http.Handler) { return understudyv1connect.NewClusterServiceHandler(a, opts...) },
	} {
		path, h := svc()
		mux.Handle(path, auth.connectGate(h))
	}

	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(ServiceNames...), compressionOptions()...))
	var reflOpts []grpcreflect.Option
	if files, err := understudyv1.DocumentedFiles(); err == nil {
		reflOpts = append(reflOpts, grpcreflect.WithDescriptorResolver(files))
	} else {
		s.log.Warn("reflection without comments", "err", err)
	}
	reflector := grpcreflect.NewStaticReflector(ServiceNames...)
	if len(reflOpts) > 0 {
		reflector = grpcreflect.NewReflector(grpcreflect.NamerFunc(func() []string { return ServiceNames }), reflOpts...)
	}
	mux.Handle(grpcreflect.NewHandlerV1(reflector, compressionOptions()...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, compressionOptions()...))

	mux.Handle("GET /v1/export", auth.httpRequire(RoleRead, http.HandlerFunc(s.serveExport)))
	mux.Handle("GET /metrics", auth.httpRequire(RoleRead, promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.node.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	pp := http.NewServeMux()
	pp.HandleFunc("/debug/pprof/", pprof.Index)
	pp.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pp.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pp.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pp.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", auth.httpRequire(RoleAdmin, pp))
	return mux
}

// serveExport answers GET /v1/export?stream=ID&start=RFC3339&end=RFC3339
// with the clip as video/mp4: 400 naming the bad parameter, 404 when
// nothing is recorded in the range, 429 when Config.MaxExports exports are
// running. It honours a single byte range (206, or 416 past the end) and
// If-Range with the clip's entity tag, as players need to seek (Safari
// plays nothing from a server without ranges); HEAD gives the headers.
// A request cuts the clip (reading and verifying its segments) unless it
// is a player's seek (a range not from byte 0), which takes the clip from
// the cache the player's first request filled; only the payloads in the
// range are read.
func (s *Server) serveExport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: GET the clip", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	a := api{s}
	id := q.Get("stream")
	if err := a.checkStream(id); err != nil {
		writeConnectError(w, err, "stream")
		return
	}
	// One "now" for both ends, as ctl has: start=now-1m&end=now is a minute.
	now := time.Now()
	start, err := s.cfg.ParseTime(q.Get("start"), now)
	if err != nil {
		http.Error(w, "start: must be an RFC 3339 time, now or now-DUR (now-10s)", http.StatusBadRequest)
		return
	}
	end, err := s.cfg.ParseTime(q.Get("end"), now)
	if err != nil {
		http.Error(w, "end: must be an RFC 3339 time, now or now-DUR (now-10s)", http.StatusBadRequest)
		return
	}
	if _, _, err := a.checkTimes(start, end); err != nil {
		writeConnectError(w, err, "")
		return
	}
	done, err := s.startExport()
	if err != nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	defer done()
	rg := strings.TrimSpace(r.Header.Get("Range"))
	key := clipKey(id, start, end)
	var c *segment.Cut
	var missing, etag string
	var size int64
	for try := 0; ; try++ {
		c, missing, err = s.exportCut(r.Context(), key, rg, id, start, end)
		if err == nil {
			if size, etag, err = c.Size(); err != nil {
				c.Release()
			}
		}
		// A local segment that failed its checksum is quarantined and out
		// of the index now: cut once more, from the other copies, so the
		// playback that found the rot does not fail for it (found by the
		// chaos suite's disk-flip: a 500 for the first playback).
		if try > 0 || !errors.Is(err, segment.ErrChecksumMismatch) {
			break
		}
		s.log.Warn("export met a segment that failed its checksum: cutting the clip again from the other copies", "stream", id, "err", err)
		s.clips.forget(key)
	}
	if err == nil {
		defer c.Release()
	}
	switch {
	case err == nil:
	case errors.Is(err, segment.ErrNoCoverage):
		http.Error(w, "nothing recorded in the range", http.StatusNotFound)
		return
	case errors.Is(err, segment.ErrClipTooLarge):
		http.Error(w, segment.ErrClipTooLarge.Error(), http.StatusBadRequest)
		return
	default:
		s.log.Error("export failed", "stream", id, "err", err)
		http.Error(w, "export failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	if missing != "" {
		h.Set("Understudy-Partial", missing)
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	off, length, status := int64(0), size, http.StatusOK
	if rg != "" && ifRange(r.Header.Get("If-Range"), etag) {
		o, l, ok := parseByteRange(rg, size)
		switch {
		case ok && l == 0:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			http.Error(w, fmt.Sprintf("range not satisfiable: the clip has %d bytes", size), http.StatusRequestedRangeNotSatisfiable)
			return
		case ok:
			off, length, status = o, l, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", o, o+l-1, size))
		}
	}
	h.Set("Content-Type", "video/mp4")
	// A browser saves the clip under a name that says what it is; stream
	// ids are [A-Za-z0-9._-], safe inside the quotes.
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", exportFilename(id, c.Info().Start)))
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	cw := &clientWriter{w: w}
	if err := c.WriteRange(r.Context(), cw, off, length); err != nil {
		if cw.err != nil || r.Context().Err() != nil {
			// The client went away, as players do when they seek.
			s.log.Debug("export ended by the client", "stream", id, "err", err)
			return
		}
		s.log.Warn("export failed midway", "stream", id, "err", err)
		s.clips.forget(key)
		panic(http.ErrAbortHandler) // the client must not take a cut file for whole
	}
	info := c.Info()
	lvl := slog.LevelInfo
	if status == http.StatusPartialContent {
		lvl = slog.LevelDebug // a player seeking asks for many ranges
	}
	s.log.Log(r.Context(), lvl, "clip exported", "stream", id, "start", info.Start, "end", info.End, "segments", info.Segments, "bytes", length)
}

// exportFilename is the file name GET /v1/export suggests:
// <stream>_<clip start, UTC, basic ISO 8601>.mp4.
func exportFilename(id string, start time.Time) string {
	return id + "_" + start.UTC().Format("20060102T150405Z") + ".mp4"
}

// clipKey names a clip in the node's clip cache.
func clipKey(id string, start, end time.Time) string {
	return id + "\x00" + start.UTC().Format(time.RFC3339Nano) + "\x00" + end.UTC().Format(time.RFC3339Nano)
}

// exportCut returns the clip a GET /v1/export with Range header rg asks
// for. A player asks for byte ranges; from its second request on (a
// seek: a range not from byte 0) the clip comes from the cache its first
// request filled. Other requests cut afresh; those with a range fill the
// cache.
func (s *Server) exportCut(ctx context.Context, key, rg, id string, start, end time.Time) (*segment.Cut, string, error) {
	if rg != "" && !strings.HasPrefix(rg, "bytes=0-") {
		if c := s.clips.get(key); c != nil {
			return c, "", nil
		}
	}
	c, missing, err := s.cutClip(ctx, id, start, end)
	if err != nil || rg == "" || c.Federated() {
		// A clip holding copies of other nodes' segments is not kept:
		// they go with the request.
		return c, missing, err
	}
	if _, _, err := c.Size(); err != nil {
		return nil, "", err
	}
	s.clips.put(key, c)
	return c, missing, nil
}

// clientWriter keeps the error of writing to the client.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// ifRange tells whether a Range header applies given the If-Range header
// v: always without one, and only when it is the clip's entity tag (a date
// or another tag asks for the whole clip).
func ifRange(v, etag string) bool {
	return v == "" || v == etag
}

// parseByteRange reads a Range header of one byte range over a file of
// size bytes: "bytes=first-last", "bytes=first-" or "bytes=-suffix". ok is
// false when the header is to be ignored (another unit, several ranges, or
// not a range at all): the whole clip is sent. A range that starts at or
// past the end is ok with length 0: not satisfiable.
func parseByteRange(v string, size int64) (off, length int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	num := func(s string) (int64, bool) {
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		x, err := strconv.ParseInt(s, 10, 64)
		return x, err == nil
	}
	if first == "" { // the last n bytes
		n, good := num(last)
		if !good {
			return 0, 0, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true
		}
		n = min(n, size)
		return size - n, n, true
	}
	a, good := num(first)
	if !good {
		return 0, 0, false
	}
	b := size - 1
	if last != "" {
		var lb int64
		if lb, good = num(last); !good || lb < a {
			return 0, 0, false
		}
		b = min(lb, size-1)
	}
	if a >= size {
		return 0, 0, true
	}
	return a, b - a + 1, true
}

// writeConnectError answers a plain HTTP request with the status of a
// connect error.
func writeConnectError(w http.ResponseWriter, err error, param string) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	msg := ce.Message()
	if param != "" {
		if _, rest, ok := strings.Cut(msg, ": "); ok && ce.Code() == connect.CodeInvalidArgument {
			msg = param + ": " + rest
		}
	}
	status := http.StatusInternalServerError
	switch ce.Code() {
	case connect.CodeInvalidArgument:
		status = http.StatusBadRequest
	case connect.CodeNotFound:
		status = http.StatusNotFound
	}
	http.Error(w, msg, status)
}
