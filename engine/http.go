package engine

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
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
func (n *Node) Handler() http.Handler {
	auth := NewAuthenticator(n.cfg.AdminToken, n.cfg.ReadToken, n.cfg.AnonymousRead)
	opts := append(compressionOptions(), connect.WithInterceptors(auth.Interceptor()),
		connect.WithCodec(strictJSON{}), connect.WithCodec(strictJSON{"json; charset=utf-8"}))
	a := api{n}
	mux := http.NewServeMux()
	for _, svc := range []func() (string, http.Handler){
		func() (string, http.Handler) { return understudyv1connect.NewStreamServiceHandler(a, opts...) },
		func() (string, http.Handler) { return understudyv1connect.NewRecordingServiceHandler(a, opts...) },
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
		n.log.Warn("reflection without comments", "err", err)
	}
	reflector := grpcreflect.NewStaticReflector(ServiceNames...)
	if len(reflOpts) > 0 {
		reflector = grpcreflect.NewReflector(grpcreflect.NamerFunc(func() []string { return ServiceNames }), reflOpts...)
	}
	mux.Handle(grpcreflect.NewHandlerV1(reflector, compressionOptions()...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, compressionOptions()...))

	mux.Handle("GET /v1/export", auth.httpRequire(RoleRead, http.HandlerFunc(n.serveExport)))
	mux.Handle("GET /metrics", auth.httpRequire(RoleRead, promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !n.ready.Load() {
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

// lazyHeaderWriter sets the MP4 headers at the first byte written, so an
// export that fails before producing anything can still answer an error
// status.
type lazyHeaderWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyHeaderWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "video/mp4")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// serveExport answers GET /v1/export?stream=ID&start=RFC3339&end=RFC3339
// with the clip as video/mp4: 400 naming the bad parameter, 404 when
// nothing is recorded in the range, 429 when Config.MaxExports exports are
// running. HEAD gets 405: its headers would cost the whole export.
func (n *Node) serveExport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed: GET the clip", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	a := api{n}
	id := q.Get("stream")
	if err := a.checkStream(id); err != nil {
		writeConnectError(w, err, "stream")
		return
	}
	start, err := time.Parse(time.RFC3339Nano, q.Get("start"))
	if err != nil {
		http.Error(w, "start: must be an RFC 3339 time", http.StatusBadRequest)
		return
	}
	end, err := time.Parse(time.RFC3339Nano, q.Get("end"))
	if err != nil {
		http.Error(w, "end: must be an RFC 3339 time", http.StatusBadRequest)
		return
	}
	if _, _, err := a.checkTimes(start, end); err != nil {
		writeConnectError(w, err, "")
		return
	}
	done, err := n.startExport()
	if err != nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	defer done()
	lw := &lazyHeaderWriter{w: w}
	info, err := n.store.Export(r.Context(), id, start, end, lw)
	if err != nil {
		if lw.started {
			n.log.Warn("export failed midway", "stream", id, "err", err)
			panic(http.ErrAbortHandler) // the client must not take a cut file for whole
		}
		if errors.Is(err, segment.ErrNoCoverage) {
			http.Error(w, "nothing recorded in the range", http.StatusNotFound)
			return
		}
		if errors.Is(err, segment.ErrClipTooLarge) {
			http.Error(w, segment.ErrClipTooLarge.Error(), http.StatusBadRequest)
			return
		}
		n.log.Error("export failed", "stream", id, "err", err)
		http.Error(w, "export failed", http.StatusInternalServerError)
		return
	}
	n.log.Info("clip exported", "stream", id, "start", info.Start, "end", info.End, "segments", info.Segments)
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
