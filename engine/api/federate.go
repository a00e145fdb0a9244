package api

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/engine/catalog"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
	"github.com/understudy-nvr/understudy/segment"
)

// Federation: any node answers for the cluster. A read that is not about
// this node alone asks the other live members for what they hold (with
// node_id set to the member, so that it answers from its own store and
// asks no one further) and merges the answers with its own.

// peerTimeout bounds one federated call to a peer: a frozen peer costs
// the caller this much, and its share of the answer.
const peerTimeout = 3 * time.Second

// peerTransport is shared by the peer clients: HTTP/2 (h2c in cleartext)
// with keep-alive, as the API serves it.
var peerTransport = func() http.RoundTripper {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: peerTimeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	tr.Protocols = p
	return tr
}()

// peerAuth adds this node's cluster credential to every peer call.
type peerAuth struct{ n Node }

func (p peerAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t := p.n.PeerCredential(); t != "" {
		r.Header.Set("Authorization", "Bearer "+t)
	}
	return peerTransport.RoundTrip(r)
}

// peer is another live member to federate with.
type peer struct{ id, api string }

// peers returns the other live members with an API address; only, when not
// empty, keeps just that one.
func (s *Server) peers(only string) []peer {
	if s.cl == nil {
		return nil
	}
	var out []peer
	for _, m := range s.cl.Members() {
		if m.ID == s.cfg.ID || !m.Alive || m.APIAddress == "" || (only != "" && m.ID != only) {
			continue
		}
		out = append(out, peer{m.ID, m.APIAddress})
	}
	return out
}

func (s *Server) peerURL(api string) string {
	if s.cfg.TLS {
		return "https://" + api
	}
	return "http://" + api
}

// peerHTTP is the HTTP client for calls to peers, carrying the cluster
// credential.
func (s *Server) peerHTTP() *http.Client { return &http.Client{Transport: peerAuth{n: s.node}} }

func (s *Server) recordingClient(p peer) understudyv1connect.RecordingServiceClient {
	return understudyv1connect.NewRecordingServiceClient(s.peerHTTP(), s.peerURL(p.api))
}

// peerTimeline is what one peer holds of a stream over a range.
type peerTimeline struct {
	node    string
	segs    []segment.SegmentInfo // its coverage, as intervals it holds
	outages []segment.Interval    // its SOURCE gaps
	end     time.Time             // where its answer ends
	live    bool                  // it ends in coverage before the range's end: it records now
	err     error
}

// federatedTimeline asks the peers (only, if set) for their timelines.
func (s *Server) federatedTimeline(ctx context.Context, stream string, start, end time.Time, class understudyv1.SegmentClass, only string) []peerTimeline {
	ps := s.peers(only)
	if only == "" {
		ps = s.readPeers(stream, start, end)
	}
	out := make([]peerTimeline, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.peerTimeline(ctx, p, stream, start, end, class)
		}()
	}
	wg.Wait()
	return out
}

func (s *Server) peerTimeline(ctx context.Context, p peer, stream string, start, end time.Time, class understudyv1.SegmentClass) peerTimeline {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	pt := peerTimeline{node: p.id}
	resp, err := s.recordingClient(p).GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{
		StreamId: stream, Start: timestamppb.New(start), End: timestamppb.New(end), NodeId: p.id, Class: class}))
	if err != nil {
		pt.err = err
		return pt
	}
	var lastCov time.Time
	for _, c := range resp.Msg.Coverage {
		origin := segment.OriginLive
		if c.Origin == understudyv1.Origin_ORIGIN_BACKFILL {
			origin = segment.OriginBackfill
		}
		pt.segs = append(pt.segs, segment.SegmentInfo{Stream: stream, Node: p.id, Origin: origin, Start: c.Start.AsTime(), End: c.End.AsTime()})
		lastCov = maxTime(lastCov, c.End.AsTime())
		pt.end = maxTime(pt.end, c.End.AsTime())
	}
	for _, g := range resp.Msg.Gaps {
		if g.Kind == understudyv1.GapKind_GAP_KIND_SOURCE {
			pt.outages = append(pt.outages, segment.Interval{Start: g.Start.AsTime(), End: g.End.AsTime()})
		}
		pt.end = maxTime(pt.end, g.End.AsTime())
	}
	pt.live = !lastCov.IsZero() && lastCov.Equal(pt.end) && pt.end.Before(end)
	return pt
}

// unreachable names the peers that did not answer, for the response's
// Understudy-Partial header.
func unreachable(pts []peerTimeline, log func(string, ...any)) string {
	var ids []string
	for _, pt := range pts {
		if pt.err != nil {
			ids = append(ids, pt.node)
			log("federated read: a peer did not answer", "peer", pt.node, "err", pt.err)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// federatedEnd is where a federated timeline ends: at the newest live edge
// among the nodes recording the stream now (the part being written is not
// a gap), else at end.
func federatedEnd(localLive bool, localEnd time.Time, pts []peerTimeline, end time.Time) time.Time {
	var edges []time.Time
	if localLive {
		edges = append(edges, localEnd)
	}
	for _, pt := range pts {
		if pt.err == nil && pt.live {
			edges = append(edges, pt.end)
		}
	}
	if len(edges) == 0 {
		return end
	}
	return slices.MaxFunc(edges, func(a, b time.Time) int { return a.Compare(b) })
}

// ReadChunk is the size of the ReadSegment messages.
const ReadChunk = 256 << 10

// fetchAttempts bounds the calls one segment copy makes: an interrupted
// copy resumes at the offset it reached.
const fetchAttempts = 3

// RemoteSegments lists the segments the live peers that may hold some
// (readPeers) hold of stream over [start, end), each with a Fetch that
// copies it with ReadSegment, and the ids of the peers that did not
// answer (for Understudy-Partial). Clip exports and the node's backfill
// use it.
func (s *Server) RemoteSegments(ctx context.Context, stream string, start, end time.Time) ([]segment.RemoteSegment, string) {
	ps := s.readPeers(stream, start, end)
	lists := make([][]segment.RemoteSegment, len(ps))
	errs := make([]peerTimeline, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i].node = p.id
			lists[i], errs[i].err = s.peerSegments(ctx, p, stream, start, end)
		}()
	}
	wg.Wait()
	var out []segment.RemoteSegment
	for _, l := range lists {
		out = append(out, l...)
	}
	return out, unreachable(errs, s.log.Warn)
}

func (s *Server) peerSegments(ctx context.Context, p peer, stream string, start, end time.Time) ([]segment.RemoteSegment, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	client := s.recordingClient(p)
	var out []segment.RemoteSegment
	token := ""
	for {
		resp, err := client.ListSegments(ctx, connect.NewRequest(&understudyv1.ListSegmentsRequest{
			StreamId: stream, Start: timestamppb.New(start), End: timestamppb.New(end), NodeId: p.id,
			PageSize: 1000, PageToken: token}))
		if err != nil {
			return nil, err
		}
		for _, sg := range resp.Msg.Segments {
			si := segment.SegmentInfo{Stream: stream, Node: cmp.Or(sg.NodeId, p.id), Start: sg.Start.AsTime(), End: sg.End.AsTime(),
				Bytes: int64(sg.Bytes), Checksum: sg.Checksum, Class: segment.ClassArchive, Origin: segment.OriginLive}
			if sg.Class == understudyv1.SegmentClass_SEGMENT_CLASS_BUFFER {
				si.Class = segment.ClassBuffer
			}
			if sg.Origin == understudyv1.Origin_ORIGIN_BACKFILL {
				si.Origin = segment.OriginBackfill
			}
			// Not a path: which node holds the copy (one it backfilled keeps
			// the recording node's id in Node), its class and origin.
			si.Path = "@" + p.id + "/" + si.Class.String() + "/" + si.Origin.String()
			out = append(out, segment.RemoteSegment{Info: si, Fetch: func(ctx context.Context) ([]byte, error) {
				return s.fetchSegment(ctx, p, si)
			}, Release: putSegBuf})
		}
		if token = resp.Msg.NextPageToken; token == "" {
			return out, nil
		}
	}
}

// fetchSegment copies one segment of peer p with ReadSegment, resuming
// where an interrupted call stopped.
func (s *Server) fetchSegment(ctx context.Context, p peer, si segment.SegmentInfo) ([]byte, error) {
	client := s.recordingClient(p)
	var data []byte
	var size int64 = -1
	var err error
	for range fetchAttempts {
		err = func() error {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			st, err := client.ReadSegment(ctx, connect.NewRequest(&understudyv1.ReadSegmentRequest{
				StreamId: si.Stream, Start: timestamppb.New(si.Start), Checksum: si.Checksum, Offset: uint64(len(data))}))
			if err != nil {
				return err
			}
			defer st.Close()
			for st.Receive() {
				msg := st.Msg()
				if sg := msg.GetSegment(); sg != nil && size < 0 {
					size = int64(sg.Bytes)
					if size > maxSegmentCopy {
						return fmt.Errorf("segment of %d bytes: larger than a segment can be", size)
					}
					if cap(data) < int(size) {
						data = append(getSegBuf(int(size)), data...)
					}
				}
				if int64(len(data)+len(msg.Chunk)) > max(size, 0) {
					return fmt.Errorf("peer sent more than the %d bytes of the segment", size)
				}
				data = append(data, msg.Chunk...)
			}
			return st.Err()
		}()
		if err == nil && int64(len(data)) == size {
			return data, nil
		}
		if err == nil {
			err = fmt.Errorf("copy ended at byte %d of %d", len(data), size)
		}
		if ctx.Err() != nil || connect.CodeOf(err) == connect.CodeNotFound || connect.CodeOf(err) == connect.CodeDataLoss {
			break
		}
	}
	return nil, fmt.Errorf("copy segment %s@%s from %s: %w", si.Stream, si.Start.UTC().Format(time.RFC3339Nano), p.id, err)
}

// segBufs is a bounded free list of the buffers segment copies are
// received into: a fresh buffer of tens of MB per copy cost backfill a
// quarter of its CPU in page faults and clearing.
var segBufs = make(chan []byte, 3)

// getSegBuf returns an empty buffer with room for size bytes.
func getSegBuf(size int) []byte {
	select {
	case b := <-segBufs:
		if cap(b) >= size {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, size)
}

// putSegBuf takes back a buffer getSegBuf gave (one of more than 256 MiB
// is left to the GC).
func putSegBuf(b []byte) {
	if cap(b) > 256<<20 {
		return
	}
	select {
	case segBufs <- b:
	default:
	}
}

// maxSegmentCopy bounds the size a peer may announce for one segment.
const maxSegmentCopy = 4 << 30

// ReadPeers returns the ids of the live members (other than this node) a
// federated read of stream over [start, end) asks: readPeers.
func (s *Server) ReadPeers(stream string, start, end time.Time) []string {
	var ids []string
	for _, p := range s.readPeers(stream, start, end) {
		ids = append(ids, p.id)
	}
	return ids
}

// readPeers returns the live members (other than this node) that may hold
// segments of stream over [start, end): see the placement history (engine/holdings.go).
func (s *Server) readPeers(stream string, start, end time.Time) []peer {
	all := s.peers("")
	hs := s.catalog.Holdings(stream)
	if len(hs) == 0 {
		return all
	}
	want := map[string]bool{}
	for _, h := range hs {
		if h.Overlaps(start, end) {
			want[h.Node] = true
		}
	}
	for _, id := range s.node.PlacedOn(stream) {
		want[id] = true
	}
	out := all[:0]
	for _, p := range all {
		if want[p.id] {
			out = append(out, p)
		}
	}
	return out
}

// peerRecorders asks the other recorders of streams for their own
// recording of them: one ListStreams (or GetStream for one stream) per
// peer, with node_id set to the peer. A peer that does not answer is left
// out (its gossiped status stands in); missing names those.
func (s *Server) peerRecorders(ctx context.Context, streams []catalog.Stream, place map[string][]string, page *understudyv1.ListStreamsRequest) (map[string]map[string]*understudyv1.Recorder, string) {
	want := map[string]bool{}
	for _, st := range streams {
		if !st.Enabled {
			continue
		}
		for _, nd := range place[st.ID] {
			if nd != s.cfg.ID {
				want[nd] = true
			}
		}
	}
	out := map[string]map[string]*understudyv1.Recorder{} // stream → node → recorder
	if len(want) == 0 {
		return out, ""
	}
	var mu sync.Mutex
	var failed []peerTimeline
	var wg sync.WaitGroup
	for _, p := range s.peers("") {
		if !want[p.id] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.peerStatuses(ctx, p, streams, page)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, peerTimeline{node: p.id, err: err})
				return
			}
			for id, r := range got {
				if out[id] == nil {
					out[id] = map[string]*understudyv1.Recorder{}
				}
				out[id][p.id] = r
			}
		}()
	}
	wg.Wait()
	return out, unreachable(failed, s.log.Debug)
}

func (s *Server) peerStatuses(ctx context.Context, p peer, streams []catalog.Stream, page *understudyv1.ListStreamsRequest) (map[string]*understudyv1.Recorder, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	c := understudyv1connect.NewStreamServiceClient(s.peerHTTP(), s.peerURL(p.api))
	var got []*understudyv1.Stream
	if page == nil {
		resp, err := c.GetStream(ctx, connect.NewRequest(&understudyv1.GetStreamRequest{Id: streams[0].ID, NodeId: p.id}))
		if err != nil {
			return nil, err
		}
		got = []*understudyv1.Stream{resp.Msg.Stream}
	} else {
		resp, err := c.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{PageSize: page.PageSize, PageToken: page.PageToken, NodeId: p.id}))
		if err != nil {
			return nil, err
		}
		got = resp.Msg.Streams
	}
	out := map[string]*understudyv1.Recorder{}
	for _, st := range got {
		for _, r := range st.GetStatus().GetRecorders() {
			if r.NodeId == p.id { // a peer speaks for itself only
				out[st.Id] = r
			}
		}
	}
	return out, nil
}
