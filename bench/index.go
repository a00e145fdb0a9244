package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim/h264synth"
	"github.com/understudy-nvr/understudy/engine/catalog"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
	"github.com/understudy-nvr/understudy/segment"
)

// IndexConfig is the segment-index run.
type IndexConfig struct {
	Bin string
	Dir string
	// IP is the loopback address the nodes started listen on.
	IP string
	// WriteFor is how long the write rate is measured.
	WriteFor time.Duration
	// TimelineCalls is how many 24 h GetTimeline calls are timed.
	TimelineCalls int
	// StartupSegments is how many segments the start-up store holds
	// (indexSegmentsPerStream to a stream).
	StartupSegments int
	Progress        func(format string, args ...any)
}

// IndexWrite is the write rate of the segment store.
type IndexWrite struct {
	// Segments closed in Seconds by one Writer (one stream), each 60 s of
	// media in one part: the file created, written and fsynced, its index
	// entry written open and then closed (synced), as the recorder does
	// it, but without the 59 other parts a live minute has.
	Segments       int     `json:"segments"`
	Seconds        float64 `json:"seconds"`
	SegmentsPerSec float64 `json:"segments_per_s"`
}

// IndexTimeline is GetTimeline over 24 h of 1-minute segments of one
// stream, through a node's Connect API.
type IndexTimeline struct {
	Segments int  `json:"segments"`
	Calls    int  `json:"calls"`
	Latency  Dist `json:"latency"`
}

// IndexStartup is the start-up of a node holding Segments segments.
type IndexStartup struct {
	Segments int `json:"segments"`
	Streams  int `json:"streams"`
	// BuildS is how long the store took to build (not a figure: written
	// without fsync to save time, the files and entries as a recorder
	// writes them).
	BuildS float64 `json:"build_s"`
	// StoreOpenMS is segment.Open with its crash recovery (every entry
	// checked against its file, every file listed), which a node runs
	// before it serves; Entries and Files are what recovery examined.
	StoreOpenMS float64 `json:"store_open_ms"`
	Entries     int     `json:"entries"`
	Files       int     `json:"files"`
	// NodeReadyMS is `understudy serve` on that data directory, from the
	// process start until /readyz answers 200.
	NodeReadyMS float64 `json:"node_ready_ms"`
	// Cache: the files and the index were just written, so they are in
	// the page cache; a cold start after a reboot reads them from disk.
	Cache string `json:"cache"`
}

// IndexResult is the segment-index run.
type IndexResult struct {
	Write    *IndexWrite    `json:"write"`
	Timeline *IndexTimeline `json:"timeline"`
	Startup  *IndexStartup  `json:"startup"`
	TookS    float64        `json:"took_s"`
}

// indexNode is the node id of the index run's stores.
const indexNode = "bench"

// indexSegmentsPerStream is how many 1-minute segments each stream of the
// start-up store holds (about a week).
const indexSegmentsPerStream = 10_000

// Index runs the segment-index measurements.
func Index(ctx context.Context, cfg IndexConfig) (*IndexResult, error) {
	logf := cfg.Progress
	if logf == nil {
		logf = func(string, ...any) {}
	}
	t0 := time.Now()
	med, err := newSynthMedia()
	if err != nil {
		return nil, err
	}
	res := &IndexResult{}

	// Write rate, fsync on.
	logf("index: segment write rate for %v (one stream, fsync on)", cfg.WriteFor)
	w, err := indexWrite(ctx, filepath.Join(cfg.Dir, "write"), med, cfg.WriteFor)
	if err != nil {
		return nil, err
	}
	res.Write = w
	logf("index: %d segments in %.1f s: %.0f segments/s", w.Segments, w.Seconds, w.SegmentsPerSec)

	// GetTimeline over 24 h.
	logf("index: GetTimeline over 24 h of 1-minute segments (1,440), %d calls through a node", cfg.TimelineCalls)
	tl, err := indexTimeline(ctx, cfg, med)
	if err != nil {
		return nil, err
	}
	res.Timeline = tl
	logf("index: GetTimeline 24 h: median %.1f ms, p99 %.1f ms", tl.Latency.Median, tl.Latency.P99)

	// Start-up with many segments.
	logf("index: building a store of %d segments for the start-up time", cfg.StartupSegments)
	st, err := indexStartup(ctx, cfg, med, logf)
	if err != nil {
		return nil, err
	}
	res.Startup = st
	logf("index: %d segments: segment.Open %.0f ms, node ready %.0f ms", st.Segments, st.StoreOpenMS, st.NodeReadyMS)
	res.TookS = time.Since(t0).Seconds()
	return res, nil
}

// synthMedia is one GOP of a tiny synthetic H.264 stream (16x16, camsim's
// h264synth: real SPS, PPS and slices): frames every 2 s, a keyframe every
// 30, so a 60 s segment holds one GOP.
type synthMedia struct {
	sps, pps []byte
	gop      [][]byte // AVCC payloads
}

const (
	synthStep = 2 * time.Second
	synthGOP  = 30 // frames per 60 s segment
)

func newSynthMedia() (*synthMedia, error) {
	p := h264synth.Params{Width: 16, Height: 16, FPS: 1, GOP: synthGOP, Bitrate: 1_000_000}
	s, err := h264synth.New(p)
	if err != nil {
		return nil, err
	}
	p.Bitrate = s.MinBitrate()
	if s, err = h264synth.New(p); err != nil {
		return nil, err
	}
	m := &synthMedia{sps: append([]byte(nil), s.SPS()...), pps: append([]byte(nil), s.PPS()...)}
	for i := 0; i < synthGOP; i++ {
		f := s.Next(h264synth.Stamp{Frame: uint64(i), Time: time.Unix(int64(i)*2, 0)})
		var avcc []byte
		for _, n := range f.NALUs {
			if len(n) > 0 && n[0]&0x1f == 12 {
				continue // filler: the rate of a real camera is not the point
			}
			avcc = binary.BigEndian.AppendUint32(avcc, uint32(len(n)))
			avcc = append(avcc, n...)
		}
		m.gop = append(m.gop, avcc)
	}
	return m, nil
}

func (m *synthMedia) writer(s *segment.Store, stream string) (*segment.Writer, error) {
	return s.NewWriter(segment.WriterConfig{Stream: stream,
		Tracks:          []segment.Track{{ClockRate: 90000, Codec: &mp4.CodecH264{SPS: m.sps, PPS: m.pps}}},
		SegmentDuration: time.Minute, PartDuration: time.Minute})
}

// writeSegment writes the frames of segment k of a writer whose first
// segment starts at start (the segment closes at the next one's first
// frame, or at Close).
func (m *synthMedia) writeSegment(w *segment.Writer, start time.Time, k int) error {
	for i := 0; i < synthGOP; i++ {
		n := int64(k*synthGOP + i)
		pts := n * int64(synthStep/time.Second) * 90000
		if err := w.WriteFrame(segment.Frame{PTS: pts, DTS: pts, Wall: start.Add(time.Duration(n) * synthStep),
			Random: i == 0, Payload: m.gop[i]}); err != nil {
			return err
		}
	}
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func indexWrite(ctx context.Context, dir string, m *synthMedia, d time.Duration) (*IndexWrite, error) {
	s, err := segment.Open(segment.Options{Dir: dir, Node: indexNode, Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	w, err := m.writer(s, "write-rate")
	if err != nil {
		return nil, err
	}
	start := time.Now().Add(-365 * 24 * time.Hour).Truncate(time.Minute)
	t0 := time.Now()
	k := 0
	for ; time.Since(t0) < d && ctx.Err() == nil; k++ {
		if err := m.writeSegment(w, start, k); err != nil {
			return nil, err
		}
	}
	// The first frame of segment k closed segment k-1; Close closes the
	// last.
	if err := w.Close(); err != nil {
		return nil, err
	}
	el := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &IndexWrite{Segments: k, Seconds: el.Seconds(), SegmentsPerSec: float64(k) / el.Seconds()}, nil
}

// buildStore writes perStream segments to each of streams streams, ending
// at end, without fsync (noSyncFS), on two writers at a time.
func buildStore(ctx context.Context, dir string, m *synthMedia, streams []string, perStream int, end time.Time) error {
	s, err := segment.Open(segment.Options{Dir: dir, Node: indexNode, Logger: quietLogger(), FS: noSyncFS{vfs.Default}})
	if err != nil {
		return err
	}
	start := end.Add(-time.Duration(perStream) * time.Minute)
	work := make(chan string)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				w, err := m.writer(s, id)
				if err == nil {
					for k := 0; k < perStream && err == nil; k++ {
						err = m.writeSegment(w, start, k)
					}
					if cerr := w.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs <- fmt.Errorf("bench: build %s: %w", id, err)
					return
				}
			}
		}()
	}
	var ferr error
feed:
	for _, id := range streams {
		select {
		case work <- id:
		case ferr = <-errs:
			break feed
		case <-ctx.Done():
			ferr = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ferr == nil {
		select {
		case ferr = <-errs:
		default:
		}
	}
	if err := s.Close(); ferr == nil {
		ferr = err
	}
	return ferr
}

// serveNode starts `understudy serve` on dataDir and returns its API
// client, the process and how long it took to answer /readyz.
func serveNode(ctx context.Context, bin, dataDir, ip, logPath string) (*apiClient, *proc, time.Duration, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("bench: %s: %w", ip, err)
	}
	addr := l.Addr().String()
	l.Close()
	t0 := time.Now()
	p, err := start(ctx, bin, logPath, []string{"UNDERSTUDY_ADMIN_TOKEN=" + token},
		"serve", "--id", indexNode, "--data-dir", dataDir, "--listen", addr, "--log-level", "warn")
	if err != nil {
		return nil, nil, 0, err
	}
	a := &apiClient{base: "http://" + addr}
	deadline := t0.Add(10 * time.Minute)
	for {
		resp, err := http.Get(a.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, p, time.Since(t0), nil
			}
		}
		select {
		case <-p.done:
			return nil, nil, 0, fmt.Errorf("bench: the node on %s exited before it was ready (log: %s)", dataDir, logPath)
		case <-ctx.Done():
			stop(p)
			return nil, nil, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop(p)
			return nil, nil, 0, errors.New("bench: the node was not ready in 10 minutes")
		}
	}
}

type bearerTransport struct{ rt http.RoundTripper }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return b.rt.RoundTrip(r)
}

func indexTimeline(ctx context.Context, cfg IndexConfig, m *synthMedia) (*IndexTimeline, error) {
	const stream, segs = "timeline-24h", 24 * 60
	dir := filepath.Join(cfg.Dir, "timeline")
	end := time.Now().Truncate(time.Minute)
	if err := buildStore(ctx, dir, m, []string{stream}, segs, end); err != nil {
		return nil, err
	}
	// The stream in the node's catalog, created before its recordings
	// (GetTimeline starts a stream's timeline at its creation), disabled:
	// the node holds the recordings and records nothing more.
	if err := createStreamAt(filepath.Join(dir, "control"), stream, end.Add(-25*time.Hour)); err != nil {
		return nil, err
	}
	a, p, _, err := serveNode(ctx, cfg.Bin, dir, cfg.IP, filepath.Join(cfg.Dir, "timeline-node.log"))
	if err != nil {
		return nil, err
	}
	defer stop(p)
	rec := understudyv1connect.NewRecordingServiceClient(&http.Client{Transport: bearerTransport{http.DefaultTransport}, Timeout: 30 * time.Second}, a.base)
	req := &understudyv1.GetTimelineRequest{StreamId: stream, Start: timestamppb.New(end.Add(-24 * time.Hour)), End: timestamppb.New(end)}
	// One call to check what it answers (and to warm the connection).
	resp, err := rec.GetTimeline(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("bench: GetTimeline: %w", err)
	}
	if cv := resp.Msg.Coverage; len(cv) == 0 || cv[0].Start.AsTime().After(end.Add(-24*time.Hour).Add(time.Second)) || cv[len(cv)-1].End.AsTime().Before(end.Add(-time.Second)) {
		return nil, fmt.Errorf("bench: GetTimeline over the 24 h store returned coverage %v", cv)
	}
	var lat []time.Duration
	for i := 0; i < cfg.TimelineCalls; i++ {
		t0 := time.Now()
		if _, err := rec.GetTimeline(ctx, connect.NewRequest(req)); err != nil {
			return nil, fmt.Errorf("bench: GetTimeline: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return &IndexTimeline{Segments: segs, Calls: len(lat), Latency: distOf(lat)}, nil
}

// createStreamAt writes a disabled stream, created at the given time,
// into the catalog of the node whose control directory is dir (the node
// not running).
func createStreamAt(dir, id string, at time.Time) error {
	db, err := catalog.OpenDB(dir, nil, quietLogger())
	if err != nil {
		return err
	}
	cat, err := catalog.Open(catalog.Config{DB: db, NodeID: indexNode, Logger: quietLogger(), Now: func() time.Time { return at }})
	if err == nil {
		_, err = cat.Create(catalog.Stream{ID: id, URL: "rtsp://192.0.2.1:554/x", Replicas: 1})
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: catalog of %s: %w", dir, err)
	}
	return nil
}

func indexStartup(ctx context.Context, cfg IndexConfig, m *synthMedia, logf func(string, ...any)) (*IndexStartup, error) {
	dir := filepath.Join(cfg.Dir, "startup")
	n := (cfg.StartupSegments + indexSegmentsPerStream - 1) / indexSegmentsPerStream
	per := cfg.StartupSegments / n
	var streams []string
	for i := 0; i < n; i++ {
		streams = append(streams, fmt.Sprintf("cam-%03d", i))
	}
	t0 := time.Now()
	if err := buildStore(ctx, dir, m, streams, per, time.Now().Truncate(time.Minute)); err != nil {
		return nil, err
	}
	out := &IndexStartup{Segments: n * per, Streams: n, BuildS: time.Since(t0).Seconds(), Cache: "warm (just written)"}
	logf("index: built %d segments of %d streams in %.0f s", out.Segments, n, out.BuildS)
	t1 := time.Now()
	s, err := segment.Open(segment.Options{Dir: dir, Node: indexNode, Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	out.StoreOpenMS = ms(time.Since(t1))
	rep := s.Recovery()
	out.Entries, out.Files = rep.Entries, rep.Files
	if err := s.Close(); err != nil {
		return nil, err
	}
	if out.Entries != out.Segments {
		return nil, fmt.Errorf("bench: the start-up store holds %d entries, want %d", out.Entries, out.Segments)
	}
	_, p, ready, err := serveNode(ctx, cfg.Bin, dir, cfg.IP, filepath.Join(cfg.Dir, "startup-node.log"))
	if err != nil {
		return nil, err
	}
	stop(p)
	out.NodeReadyMS = ms(ready)
	return out, nil
}

// noSyncFS is the file system without fsync: building a large store for
// the start-up figure would otherwise take hours of fsyncs. The files and
// index entries are the same; only their durability is skipped.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                { return nil }
func (noSyncFile) SyncData() error            { return nil }
func (noSyncFile) SyncTo(int64) (bool, error) { return true, nil }
func wrapFile(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrapFile(fs.FS.Create(name, c))
}

func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return wrapFile(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs noSyncFS) OpenDir(name string) (vfs.File, error) { return wrapFile(fs.FS.OpenDir(name)) }

func (fs noSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return wrapFile(fs.FS.ReuseForWrite(oldname, newname, c))
}
