package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/placement"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/segment"
)

// invalid returns an invalid_argument error whose message names the field.
func invalid(field, format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// catalogError maps a catalog error to its connect code.
func catalogError(err error) error {
	var fe *catalog.FieldError
	switch {
	case errors.As(err, &fe):
		field := fe.Field
		switch field {
		case "username", "password":
			field = "credentials." + field
		case "page_size", "page_token":
		default:
			field = "stream." + field
		}
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, fe.Msg))
	case errors.Is(err, catalog.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, catalog.ErrAlreadyExists):
		return connect.NewError(connect.CodeAlreadyExists, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// streamToProto is the API's form of a stream: without its credentials,
// and with the URL redacted (cameras that take a password in the query or
// the path keep it in the URL; no token, not even the admin's, reads it back).
func streamToProto(s catalog.Stream) *understudyv1.Stream {
	p := &understudyv1.Stream{
		Id:               s.ID,
		Url:              catalog.RedactURL(s.URL),
		HasCredentials:   s.HasCredentials(),
		Replicas:         uint32(s.Replicas),
		ArchiveRetention: durationpb.New(s.ArchiveRetention),
		Labels:           s.Labels,
		Enabled:          s.Enabled,
		Weight:           uint32(s.LoadWeight()),
		Scope:            s.Scope,
		StrictScope:      s.StrictScope,
	}
	if !s.CreateTime.IsZero() {
		p.CreateTime = timestamppb.New(s.CreateTime)
	}
	if !s.UpdateTime.IsZero() {
		p.UpdateTime = timestamppb.New(s.UpdateTime)
	}
	return p
}

// checkURL rejects a URL carrying credentials: they belong in
// `credentials`, never in a URL that may be printed.
func checkURL(raw string) error {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return invalid("stream.url", "must not contain credentials (user-info); put them in credentials")
	}
	if strings.Contains(raw, "@") {
		if _, err := url.Parse(raw); err != nil {
			return invalid("stream.url", "does not parse")
		}
	}
	return nil
}

// keepsURL reports whether an update's URL is the redacted form of the
// stored one, which the API returned: then the stored URL, with its real
// secrets, stays.
func keepsURL(stored, update string) bool {
	return update != stored && update == catalog.RedactURL(stored)
}

func retentionOf(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid("stream.archive_retention", "%v", err)
	}
	if d.AsDuration() < 0 {
		return 0, invalid("stream.archive_retention", "must not be negative")
	}
	return d.AsDuration(), nil
}

func replicasOf(r uint32) (int, error) {
	if r > catalog.MaxReplicas {
		return 0, invalid("stream.replicas", "must be %d..%d, got %d", catalog.MinReplicas, catalog.MaxReplicas, r)
	}
	return int(r), nil
}

func (a api) CreateStream(_ context.Context, req *connect.Request[understudyv1.CreateStreamRequest]) (*connect.Response[understudyv1.CreateStreamResponse], error) {
	p := req.Msg.GetStream()
	if p == nil {
		return nil, invalid("stream", "required")
	}
	if err := checkURL(p.GetUrl()); err != nil {
		return nil, err
	}
	ret, err := retentionOf(p.GetArchiveRetention())
	if err != nil {
		return nil, err
	}
	rep, err := replicasOf(p.GetReplicas())
	if err != nil {
		return nil, err
	}
	s := catalog.Stream{
		ID: p.GetId(), URL: p.GetUrl(),
		Username: p.GetCredentials().GetUsername(), Password: p.GetCredentials().GetPassword(),
		Replicas: rep, ArchiveRetention: ret, Labels: p.GetLabels(), Enabled: p.GetEnabled(),
		Weight: int(min(p.GetWeight(), catalog.MaxWeight+1)), Scope: p.GetScope(), StrictScope: p.GetStrictScope(),
	}
	out, err := a.catalog.Create(s)
	if err != nil {
		return nil, catalogError(err)
	}
	return connect.NewResponse(&understudyv1.CreateStreamResponse{Stream: streamToProto(out)}), nil
}

func (a api) GetStream(ctx context.Context, req *connect.Request[understudyv1.GetStreamRequest]) (*connect.Response[understudyv1.GetStreamResponse], error) {
	if err := catalog.ValidateID(req.Msg.GetId()); err != nil {
		return nil, invalid("id", "%s", strings.TrimPrefix(err.Error(), "id: "))
	}
	if err := a.checkNode(req.Msg.GetNodeId()); err != nil {
		return nil, err
	}
	s, err := a.catalog.Get(req.Msg.GetId())
	if err != nil {
		return nil, catalogError(err)
	}
	resp := connect.NewResponse(&understudyv1.GetStreamResponse{})
	resp.Msg.Stream = a.withStatus(ctx, []catalog.Stream{s}, req.Msg.GetNodeId(), nil, resp.Header())[0]
	return resp, nil
}

// withStatus is the API form of streams with their live status: this
// node's own recording when node is this node, that node's when it is
// another, the cluster's view when it is empty (the other recorders asked
// with node_id set, peerRecorders, and judged by the node with the rest:
// Node.StreamStatuses). page is the ListStreams request, nil for
// GetStream.
func (a api) withStatus(ctx context.Context, streams []catalog.Stream, node string, page *understudyv1.ListStreamsRequest, h http.Header) []*understudyv1.Stream {
	place := a.node.Placement()
	out := make([]*understudyv1.Stream, len(streams))
	if node != "" && node != a.cfg.ID {
		// Another node's own view: ask it, and fall back to the gossip.
		var peerRecs map[string]map[string]*understudyv1.Recorder
		missing := node // until it answers
		for _, p := range a.peers(node) {
			got, err := a.peerStatuses(ctx, p, streams, page)
			if err != nil {
				a.log.Debug("stream status: the node did not answer", "peer", p.id, "err", err)
				continue
			}
			missing = ""
			peerRecs = map[string]map[string]*understudyv1.Recorder{}
			for id, r := range got {
				peerRecs[id] = map[string]*understudyv1.Recorder{p.id: r}
			}
		}
		if missing != "" {
			h.Set("Understudy-Partial", missing)
		}
		for i, s := range streams {
			out[i] = streamToProto(s)
			out[i].Status = &understudyv1.StreamStatus{}
			if r := peerRecs[s.ID][node]; r != nil {
				out[i].Status = &understudyv1.StreamStatus{State: r.State, Reason: r.Reason, Since: r.Since, LastFrameTime: r.LastFrameTime,
					Recorders: []*understudyv1.Recorder{r}}
			}
		}
		return out
	}
	var peerRecs map[string]map[string]*understudyv1.Recorder
	if node == "" && a.cl != nil {
		var missing string
		peerRecs, missing = a.peerRecorders(ctx, streams, place, page)
		if missing != "" {
			h.Set("Understudy-Partial", missing)
		}
	}
	for i, st := range a.node.StreamStatuses(streams, place, peerRecs, node != "") {
		out[i] = streamToProto(streams[i])
		out[i].Status = st
	}
	return out
}

func (a api) ListStreams(ctx context.Context, req *connect.Request[understudyv1.ListStreamsRequest]) (*connect.Response[understudyv1.ListStreamsResponse], error) {
	if err := a.checkNode(req.Msg.GetNodeId()); err != nil {
		return nil, err
	}
	size := req.Msg.GetPageSize()
	if size > catalog.MaxPageSize {
		size = catalog.MaxPageSize
	}
	ss, next, err := a.catalog.List(int(size), req.Msg.GetPageToken())
	if err != nil {
		return nil, catalogError(err)
	}
	resp := connect.NewResponse(&understudyv1.ListStreamsResponse{NextPageToken: next})
	if len(ss) > 0 {
		resp.Msg.Streams = a.withStatus(ctx, ss, req.Msg.GetNodeId(), req.Msg, resp.Header())
	}
	return resp, nil
}

func (a api) UpdateStream(_ context.Context, req *connect.Request[understudyv1.UpdateStreamRequest]) (*connect.Response[understudyv1.UpdateStreamResponse], error) {
	p := req.Msg.GetStream()
	if p == nil {
		return nil, invalid("stream", "required")
	}
	if err := catalog.ValidateID(p.GetId()); err != nil {
		return nil, invalid("stream.id", "%s", strings.TrimPrefix(err.Error(), "id: "))
	}
	paths := req.Msg.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask", "required: name the fields to change")
	}
	all := map[string]bool{"url": true, "credentials": true, "replicas": true, "archive_retention": true, "labels": true, "enabled": true,
		"weight": true, "scope": true, "strict_scope": true}
	set := map[string]bool{}
	for _, path := range paths {
		switch {
		case path == "*":
			for k := range all {
				set[k] = true
			}
		case all[path]:
			set[path] = true
		default:
			return nil, invalid("update_mask", "unknown field %q (allowed: url, credentials, replicas, archive_retention, labels, enabled, weight, scope, strict_scope, *)", path)
		}
	}
	if set["url"] {
		if err := checkURL(p.GetUrl()); err != nil {
			return nil, err
		}
	}
	ret, err := retentionOf(p.GetArchiveRetention())
	if err != nil {
		return nil, err
	}
	rep, err := replicasOf(p.GetReplicas())
	if err != nil {
		return nil, err
	}
	out, err := a.catalog.Update(p.GetId(), func(s *catalog.Stream) error {
		// A client that read the stream and writes back what it got sends
		// the redacted URL: keep the secret it stands for rather than
		// storing the mask.
		if set["url"] && !keepsURL(s.URL, p.GetUrl()) {
			s.URL = p.GetUrl()
		}
		if set["credentials"] {
			s.Username, s.Password = p.GetCredentials().GetUsername(), p.GetCredentials().GetPassword()
		}
		if set["replicas"] {
			s.Replicas = rep
		}
		if set["archive_retention"] {
			s.ArchiveRetention = ret
		}
		if set["labels"] {
			s.Labels = p.GetLabels()
		}
		if set["enabled"] {
			s.Enabled = p.GetEnabled()
		}
		if set["weight"] {
			s.Weight = int(min(p.GetWeight(), catalog.MaxWeight+1))
		}
		if set["scope"] {
			s.Scope = p.GetScope()
		}
		if set["strict_scope"] {
			s.StrictScope = p.GetStrictScope()
		}
		return nil
	})
	if err != nil {
		return nil, catalogError(err)
	}
	return connect.NewResponse(&understudyv1.UpdateStreamResponse{Stream: streamToProto(out)}), nil
}

func (a api) DeleteStream(_ context.Context, req *connect.Request[understudyv1.DeleteStreamRequest]) (*connect.Response[understudyv1.DeleteStreamResponse], error) {
	if err := catalog.ValidateID(req.Msg.GetId()); err != nil {
		return nil, invalid("id", "%s", strings.TrimPrefix(err.Error(), "id: "))
	}
	if err := a.catalog.Delete(req.Msg.GetId()); err != nil {
		return nil, catalogError(err)
	}
	return connect.NewResponse(&understudyv1.DeleteStreamResponse{}), nil
}

// --- RecordingService ---------------------------------------------------

// checkRange validates a [start, end) request range against the maximum.
func (a api) checkRange(start, end *timestamppb.Timestamp) (time.Time, time.Time, error) {
	if start == nil {
		return time.Time{}, time.Time{}, invalid("start", "required")
	}
	if end == nil {
		return time.Time{}, time.Time{}, invalid("end", "required")
	}
	if err := start.CheckValid(); err != nil {
		return time.Time{}, time.Time{}, invalid("start", "%v", err)
	}
	if err := end.CheckValid(); err != nil {
		return time.Time{}, time.Time{}, invalid("end", "%v", err)
	}
	return a.checkTimes(start.AsTime(), end.AsTime())
}

func (a api) checkTimes(s, e time.Time) (time.Time, time.Time, error) {
	if !e.After(s) {
		return s, e, invalid("end", "must be after start")
	}
	if e.Sub(s) > a.cfg.MaxRange {
		return s, e, invalid("end", "range of %s is over the maximum of %s", e.Sub(s), a.cfg.MaxRange)
	}
	return s, e, nil
}

// checkStream validates a stream id and returns NOT_FOUND for a stream
// that neither the catalog nor the store knows.
func (a api) checkStream(id string) error {
	if err := catalog.ValidateID(id); err != nil {
		return invalid("stream_id", "%s", strings.TrimPrefix(err.Error(), "id: "))
	}
	if _, err := a.catalog.Get(id); err == nil {
		return nil
	}
	streams, err := a.store.Streams()
	if err != nil {
		return connect.NewError(connect.CodeInternal, err)
	}
	if slices.Contains(streams, id) {
		return nil
	}
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("stream %q not found", id))
}

func classFilter(c understudyv1.SegmentClass) (segment.Class, bool, error) {
	switch c {
	case understudyv1.SegmentClass_SEGMENT_CLASS_UNSPECIFIED:
		return 0, false, nil
	case understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE:
		return segment.ClassArchive, true, nil
	case understudyv1.SegmentClass_SEGMENT_CLASS_BUFFER:
		return segment.ClassBuffer, true, nil
	}
	return 0, false, invalid("class", "unknown value %d", c)
}

func classToProto(c segment.Class) understudyv1.SegmentClass {
	if c == segment.ClassBuffer {
		return understudyv1.SegmentClass_SEGMENT_CLASS_BUFFER
	}
	return understudyv1.SegmentClass_SEGMENT_CLASS_ARCHIVE
}

func originToProto(o segment.Origin) understudyv1.Origin {
	if o == segment.OriginBackfill {
		return understudyv1.Origin_ORIGIN_BACKFILL
	}
	return understudyv1.Origin_ORIGIN_LIVE
}

// segments returns the segments of the request's filters.
func (a api) segments(stream string, start, end time.Time, node string, class understudyv1.SegmentClass) ([]segment.SegmentInfo, error) {
	cls, byClass, err := classFilter(class)
	if err != nil {
		return nil, err
	}
	if node != "" && node != a.cfg.ID {
		return nil, nil // the only node of the cluster holds none of node's
	}
	all, err := a.store.Segments(stream, start, end)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	var out []segment.SegmentInfo
	for _, si := range all {
		if !byClass || si.Class == cls {
			out = append(out, si)
		}
	}
	return out, nil
}

func (a api) GetTimeline(ctx context.Context, req *connect.Request[understudyv1.GetTimelineRequest]) (*connect.Response[understudyv1.GetTimelineResponse], error) {
	m := req.Msg
	if err := a.checkStream(m.GetStreamId()); err != nil {
		return nil, err
	}
	start, end, err := a.checkRange(m.GetStart(), m.GetEnd())
	if err != nil {
		return nil, err
	}
	if err := a.checkNode(m.GetNodeId()); err != nil {
		return nil, err
	}
	if now := time.Now(); end.After(now) {
		end = now
	}
	// The stream's timeline starts when it was created: the time before
	// is not a gap of the stream.
	created := time.Time{}
	if st, err := a.catalog.Get(m.GetStreamId()); err == nil && st.CreateTime.After(start) {
		start, created = st.CreateTime, st.CreateTime
	}
	resp := connect.NewResponse(&understudyv1.GetTimelineResponse{})
	if !end.After(start) {
		return resp, nil
	}
	segs, err := a.segments(m.GetStreamId(), start, end, m.GetNodeId(), m.GetClass())
	if err != nil {
		return nil, err
	}
	localEnd, localLive := end, false
	// The part being written is indexed only once it is durable. While the
	// stream is recording here and the durable coverage keeps up with the
	// frames, the time after it is the live edge, not a gap: the timeline
	// ends there. (A stalled disk lets the frames run ahead: then it is a gap.)
	if newest, ok := a.node.LiveEdge(m.GetStreamId()); ok && (m.GetNodeId() == "" || m.GetNodeId() == a.cfg.ID) {
		var durable time.Time
		for _, si := range segs {
			if si.Node == a.cfg.ID && si.Origin == segment.OriginLive && si.End.After(durable) {
				durable = si.End
			}
		}
		if durable.After(start) && durable.Before(end) && newest.Sub(durable) <= LiveEdgeSlack {
			localEnd, localLive = durable, true
		}
	}
	var outages []segment.Interval
	if m.GetNodeId() == "" || m.GetNodeId() == a.cfg.ID {
		if outages, err = a.store.SourceOutages(m.GetStreamId(), start, end); err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		if since, ok := a.node.OpenOutage(m.GetStreamId()); ok && since.Before(end) {
			outages = append(outages, segment.Interval{Start: maxTime(since, start), End: end})
		}
	}
	// Any node answers for the cluster: what the other nodes hold joins
	// this node's own, unless the request is about this node alone.
	finalEnd := localEnd
	if m.GetNodeId() != a.cfg.ID {
		pts := a.federatedTimeline(ctx, m.GetStreamId(), start, end, m.GetClass(), m.GetNodeId())
		for _, pt := range pts {
			segs = append(segs, pt.segs...)
			outages = append(outages, pt.outages...)
		}
		if missing := unreachable(pts, a.log.Warn); missing != "" {
			resp.Header().Set("Understudy-Partial", missing)
		}
		finalEnd = federatedEnd(localLive, localEnd, pts, end)
	}
	tl := BuildTimeline(segs, segment.Merge(outages), a.cfg.ID, start, finalEnd)
	// Until its first recorder connects (the wait for the camera's first
	// keyframe), a new stream is starting, not losing video.
	if !created.IsZero() && len(tl.Gaps) > 0 && len(tl.Coverage) > 0 {
		if g := tl.Gaps[0]; g.Start.Equal(created) && g.End.Equal(tl.Coverage[0].Start) && g.End.Sub(g.Start) <= startupGrace {
			tl.Gaps = tl.Gaps[1:]
		}
	}
	for _, c := range tl.Coverage {
		resp.Msg.Coverage = append(resp.Msg.Coverage, &understudyv1.CoverageInterval{
			Start: timestamppb.New(c.Start), End: timestamppb.New(c.End), NodeIds: c.Nodes, Origin: originToProto(c.Origin)})
	}
	for _, g := range tl.Gaps {
		resp.Msg.Gaps = append(resp.Msg.Gaps, &understudyv1.Gap{Start: timestamppb.New(g.Start), End: timestamppb.New(g.End), Kind: g.Kind})
	}
	return resp, nil
}

// LiveEdgeSlack is how far the newest durable part of a stream recording
// here may trail its newest frame and still be the live edge: the part
// being written (1 s) and the next one started at a segment boundary.
const LiveEdgeSlack = 3 * time.Second

// startupGrace bounds the wait for a new stream's first frames that the
// timeline shows as starting rather than as a gap.
const startupGrace = 15 * time.Second

// checkNode checks a node_id filter: empty, this node, or a member.
func (a api) checkNode(id string) error {
	if id == "" || id == a.cfg.ID {
		return nil
	}
	if a.cl != nil {
		for _, m := range a.cl.Members() {
			if m.ID == id {
				return nil
			}
		}
	}
	return invalid("node_id", "%q is not a node of this cluster", id)
}

func (a api) ListSegments(ctx context.Context, req *connect.Request[understudyv1.ListSegmentsRequest]) (*connect.Response[understudyv1.ListSegmentsResponse], error) {
	m := req.Msg
	if err := a.checkStream(m.GetStreamId()); err != nil {
		return nil, err
	}
	start, end, err := a.checkRange(m.GetStart(), m.GetEnd())
	if err != nil {
		return nil, err
	}
	var after *segCursor
	if t := m.GetPageToken(); t != "" {
		c, err := parseSegCursor(t)
		if err != nil {
			return nil, invalid("page_token", "not a token this server issued")
		}
		after = &c
	}
	size := int(m.GetPageSize())
	if size == 0 {
		size = 100
	}
	size = min(size, 1000)
	segs, err := a.segments(m.GetStreamId(), start, end, m.GetNodeId(), m.GetClass())
	if err != nil {
		return nil, err
	}
	// Without a node filter the listing is the cluster's: every live
	// peer's segments too.
	missing := ""
	if m.GetNodeId() == "" && a.cl != nil {
		var remote []segment.RemoteSegment
		remote, missing = a.RemoteSegments(ctx, m.GetStreamId(), start, end)
		cls, byClass, _ := classFilter(m.GetClass())
		for _, r := range remote {
			if !byClass || r.Info.Class == cls {
				segs = append(segs, r.Info)
			}
		}
	}
	// Pages continue after the last segment returned (by start, then
	// path), not at an offset: segments that retention deletes or
	// recording adds between two calls shift no page.
	slices.SortFunc(segs, func(x, y segment.SegmentInfo) int { return segCursorOf(x).compare(segCursorOf(y)) })
	resp := &understudyv1.ListSegmentsResponse{}
	page := segs
	if after != nil {
		i, _ := slices.BinarySearchFunc(segs, *after, func(si segment.SegmentInfo, c segCursor) int {
			if segCursorOf(si).compare(c) <= 0 {
				return -1
			}
			return 1
		})
		page = segs[i:]
	}
	if len(page) > size {
		page = page[:size]
		resp.NextPageToken = segCursorOf(page[size-1]).String()
	}
	for _, si := range page {
		resp.Segments = append(resp.Segments, segmentProto(si))
	}
	r := connect.NewResponse(resp)
	if missing != "" {
		r.Header().Set("Understudy-Partial", missing)
	}
	return r, nil
}

// segCursor is the position of a segment in a ListSegments listing.
type segCursor struct {
	start int64  // Unix ns
	path  string // the node, NUL, and the path (empty for another node's)
}

func segCursorOf(si segment.SegmentInfo) segCursor {
	return segCursor{si.Start.UnixNano(), si.Node + "\x00" + si.Path}
}

func (c segCursor) compare(d segCursor) int {
	if c.start != d.start {
		return cmp.Compare(c.start, d.start)
	}
	return strings.Compare(c.path, d.path)
}

// String is the page token: "c" and the base64url of the start (8 bytes,
// big-endian) and the path.
func (c segCursor) String() string {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.start))
	return "c" + base64.RawURLEncoding.EncodeToString(append(b, c.path...))
}

// maxCursorPath bounds the path in a page token (segment paths are
// about 100 bytes): a forged megabyte token is refused, not searched for.
const maxCursorPath = 1024

func parseSegCursor(t string) (segCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(t, "c"))
	if !strings.HasPrefix(t, "c") || err != nil || len(raw) < 9 || len(raw) > 8+maxCursorPath || !utf8.Valid(raw[8:]) {
		return segCursor{}, errors.New("bad page token")
	}
	return segCursor{int64(binary.BigEndian.Uint64(raw)), string(raw[8:])}, nil
}

// exportChunk is the size of the ExportClip messages.
const exportChunk = 256 << 10

func (a api) ExportClip(ctx context.Context, req *connect.Request[understudyv1.ExportClipRequest], out *connect.ServerStream[understudyv1.ExportClipResponse]) error {
	m := req.Msg
	if err := a.checkStream(m.GetStreamId()); err != nil {
		return err
	}
	start, end, err := a.checkRange(m.GetStart(), m.GetEnd())
	if err != nil {
		return err
	}
	done, err := a.startExport()
	if err != nil {
		return connect.NewError(connect.CodeResourceExhausted, err)
	}
	defer done()
	// The metadata goes first: cutting the clip yields it (and checks every
	// segment) before a byte of the file is written; then the file streams
	// straight from the segments.
	cut, missing, err := a.cutClip(ctx, m.GetStreamId(), start, end)
	if err != nil {
		return exportError(err)
	}
	defer cut.Release()
	if missing != "" {
		out.ResponseHeader().Set("Understudy-Partial", missing)
	}
	info := cut.Info()
	cw := &chunkSender{buf: make([]byte, 0, exportChunk), send: func(chunk []byte, first bool) error {
		msg := &understudyv1.ExportClipResponse{Chunk: chunk}
		if first {
			msg.ContentType = "video/mp4"
			msg.Start, msg.End = timestamppb.New(info.Start), timestamppb.New(info.End)
		}
		return out.Send(msg)
	}}
	err = cut.Write(ctx, cw)
	if err == nil {
		err = cw.flush()
	}
	if cw.err != nil {
		return cw.err // the client went away: nothing to answer
	}
	if err != nil {
		return exportError(err)
	}
	return nil
}

// cutClip cuts the clip [start, end) of a stream from what any node holds:
// this node's segments first, the peers' copied where this node has none
// (segment.Store.CutClipFrom). missing names the peers that did not
// answer.
func (s *Server) cutClip(ctx context.Context, stream string, start, end time.Time) (c *segment.Cut, missing string, err error) {
	var remote []segment.RemoteSegment
	if s.cl != nil {
		remote, missing = s.RemoteSegments(ctx, stream, start, end)
	}
	c, err = s.store.CutClipFrom(ctx, stream, start, end, remote)
	if err == nil && c.Info().Remote > 0 {
		s.log.Debug("clip cut from other nodes' segments too", "stream", stream, "segments", c.Info().Segments, "remote", c.Info().Remote)
	}
	return c, missing, err
}

// ReadSegment sends one segment this node holds, in chunks from the
// offset asked for.
func (a api) ReadSegment(ctx context.Context, req *connect.Request[understudyv1.ReadSegmentRequest], out *connect.ServerStream[understudyv1.ReadSegmentResponse]) error {
	m := req.Msg
	if err := a.checkStream(m.GetStreamId()); err != nil {
		return err
	}
	if m.GetStart() == nil {
		return invalid("start", "required: the segment's start as ListSegments gives it")
	}
	if err := m.GetStart().CheckValid(); err != nil {
		return invalid("start", "%v", err)
	}
	done, err := a.startExport()
	if err != nil {
		return connect.NewError(connect.CodeResourceExhausted, err)
	}
	defer done()
	r, err := a.store.OpenSegmentAt(m.GetStreamId(), m.GetStart().AsTime(), m.GetChecksum())
	switch {
	case errors.Is(err, segment.ErrNoSegment):
		return connect.NewError(connect.CodeNotFound, err)
	case err != nil:
		return connect.NewError(connect.CodeInternal, err)
	}
	defer r.Close()
	si := r.Info()
	if m.GetOffset() > uint64(si.Bytes) {
		return connect.NewError(connect.CodeOutOfRange, fmt.Errorf("offset %d: the segment has %d bytes", m.GetOffset(), si.Bytes))
	}
	// The file is read and hashed from its start, in chunks, and sent from
	// the offset; a closed segment that fails its checksum ends the stream
	// with DATA_LOSS (and is quarantined here), so the copy is refused.
	buf := make([]byte, ReadChunk)
	var pos uint64
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return connect.NewError(connect.CodeCanceled, err)
		}
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			if errors.Is(rerr, segment.ErrChecksumMismatch) {
				return connect.NewError(connect.CodeDataLoss, rerr)
			}
			return connect.NewError(connect.CodeInternal, rerr)
		}
		chunk := buf[:n]
		if skip := min(uint64(n), m.GetOffset()-min(pos, m.GetOffset())); skip > 0 {
			chunk = chunk[skip:]
		}
		pos += uint64(n)
		if len(chunk) > 0 || first && pos >= uint64(si.Bytes) {
			msg := &understudyv1.ReadSegmentResponse{Chunk: chunk}
			if first {
				msg.Segment = segmentProto(si)
				first = false
			}
			if err := out.Send(msg); err != nil {
				return err
			}
		}
		if rerr != nil || n < len(buf) {
			// The end of the file; a closed segment's checksum is checked
			// by the read after its last byte.
			if _, err := r.Read(buf[:1]); err != nil && !errors.Is(err, io.EOF) {
				if errors.Is(err, segment.ErrChecksumMismatch) {
					return connect.NewError(connect.CodeDataLoss, err)
				}
				return connect.NewError(connect.CodeInternal, err)
			}
			return nil
		}
	}
}

func segmentProto(si segment.SegmentInfo) *understudyv1.Segment {
	return &understudyv1.Segment{
		StreamId: si.Stream, NodeId: si.Node, Start: timestamppb.New(si.Start), End: timestamppb.New(si.End),
		Bytes: uint64(max(si.Bytes, 0)), Checksum: si.Checksum, Class: classToProto(si.Class), Origin: originToProto(si.Origin)}
}

// chunkSender cuts what is written to it into messages of exportChunk
// bytes.
type chunkSender struct {
	buf  []byte
	sent bool
	send func(chunk []byte, first bool) error
	err  error // of send
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(c.buf)-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush sends what is buffered; the first message goes even when empty.
func (c *chunkSender) flush() error {
	if len(c.buf) == 0 && c.sent {
		return nil
	}
	if err := c.send(c.buf, !c.sent); err != nil {
		c.err = err
		return err
	}
	c.sent = true
	c.buf = c.buf[:0]
	return nil
}

func exportError(err error) error {
	switch {
	case errors.Is(err, segment.ErrNoCoverage):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, segment.ErrClipTooLarge):
		return connect.NewError(connect.CodeOutOfRange, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// --- ClusterService -----------------------------------------------------

func (a api) nodeProto() *understudyv1.Node {
	st := a.node.Status()
	return &understudyv1.Node{
		Id: a.cfg.ID, Domain: a.cfg.Domain, State: NodeStateProto(parseState(st.State)),
		ApiAddress: a.cfg.Address, HomeStreams: st.Home, ReplicaStreams: st.Replica, CpuPercent: st.CPUPercent,
		DiskUsedBytes: st.DiskUsed, DiskFreeBytes: st.DiskFree, Version: a.cfg.Version, Capacity: float64(st.Weight),
		StatsTime: timestamppb.Now(),
	}
}

// ListNodes lists this node with its own figures and every other member
// it knows with the figures of its last gossiped status.
func (a api) ListNodes(context.Context, *connect.Request[understudyv1.ListNodesRequest]) (*connect.Response[understudyv1.ListNodesResponse], error) {
	nodes := []*understudyv1.Node{a.nodeProto()}
	if a.cl != nil {
		statuses := a.cl.Statuses()
		for _, m := range a.cl.Members() {
			if m.ID == a.cfg.ID {
				continue
			}
			nd := &understudyv1.Node{Id: m.ID, Domain: m.Domain, ApiAddress: m.APIAddress, Version: m.Version,
				Capacity: float64(max(m.Weight, 1)), State: NodeStateProto(parseState(m.State))}
			switch {
			case m.Left:
				nd.State = understudyv1.NodeState_NODE_STATE_LEFT
			case !m.Alive:
				nd.State = understudyv1.NodeState_NODE_STATE_DOWN
			case m.Suspect:
				nd.State = understudyv1.NodeState_NODE_STATE_SUSPECT
			}
			if st, ok := statuses[m.ID]; ok && m.Alive {
				nd.HomeStreams, nd.ReplicaStreams, nd.CpuPercent = st.Home, st.Replica, st.CPUPercent
				nd.DiskUsedBytes, nd.DiskFreeBytes = st.DiskUsed, st.DiskFree
				if !st.Time.IsZero() {
					nd.StatsTime = timestamppb.New(st.Time)
				}
			}
			nodes = append(nodes, nd)
		}
		nodes = append(nodes, a.registryOnly(nodes)...)
	}
	slices.SortFunc(nodes, func(x, y *understudyv1.Node) int { return strings.Compare(x.Id, y.Id) })
	return connect.NewResponse(&understudyv1.ListNodesResponse{Nodes: nodes}), nil
}

func (a api) GetPlacement(_ context.Context, req *connect.Request[understudyv1.GetPlacementRequest]) (*connect.Response[understudyv1.GetPlacementResponse], error) {
	var streams []catalog.Stream
	if id := req.Msg.GetStreamId(); id != "" {
		if err := catalog.ValidateID(id); err != nil {
			return nil, invalid("stream_id", "%s", strings.TrimPrefix(err.Error(), "id: "))
		}
		s, err := a.catalog.Get(id)
		if err != nil {
			return nil, catalogError(err)
		}
		streams = []catalog.Stream{s}
	} else {
		token := ""
		for {
			page, next, err := a.catalog.List(catalog.MaxPageSize, token)
			if err != nil {
				return nil, catalogError(err)
			}
			streams = append(streams, page...)
			if next == "" {
				break
			}
			token = next
		}
	}
	placed := a.node.Placement()
	resp := &understudyv1.GetPlacementResponse{}
	for _, s := range streams {
		resp.Assignments = append(resp.Assignments, &understudyv1.Assignment{StreamId: s.ID, NodeIds: placed[s.ID], Replicas: uint32(s.Replicas)})
	}
	return connect.NewResponse(resp), nil
}

// WatchEvents streams the node's events that pass the filters. A watcher
// too slow to take them loses events rather than slowing recording; the
// next event it receives then carries details["events_dropped"], the
// number lost so far.
func (a api) WatchEvents(ctx context.Context, req *connect.Request[understudyv1.WatchEventsRequest], out *connect.ServerStream[understudyv1.WatchEventsResponse]) error {
	m := req.Msg
	for i, k := range m.GetKinds() {
		if _, ok := understudyv1.EventKind_name[int32(k)]; !ok || k == understudyv1.EventKind_EVENT_KIND_UNSPECIFIED {
			return invalid(fmt.Sprintf("kinds[%d]", i), "unknown event kind %d", k)
		}
	}
	sub := a.node.Subscribe(a.cfg.EventBuffer)
	defer sub.Close()
	// Headers now (a nil message sends only them): the client's call
	// returns once the subscription exists.
	if err := out.Send(nil); err != nil {
		return err
	}
	var reported uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.node.Stopping():
			return nil
		case e := <-sub.C:
			if len(m.GetStreamIds()) > 0 && !slices.Contains(m.GetStreamIds(), e.Stream) {
				continue
			}
			if len(m.GetNodeIds()) > 0 && !slices.Contains(m.GetNodeIds(), e.Node) {
				continue
			}
			if len(m.GetKinds()) > 0 && !slices.Contains(m.GetKinds(), e.Kind) {
				continue
			}
			details := e.Details
			if d := sub.Dropped(); d > reported {
				details = make(map[string]string, len(e.Details)+1)
				for k, v := range e.Details {
					details[k] = v
				}
				details["events_dropped"] = strconv.FormatUint(d, 10)
				reported = d
			}
			ev := &understudyv1.Event{Time: timestamppb.New(e.Time), Kind: e.Kind, StreamId: e.Stream, NodeId: e.Node, Message: e.Message, Details: details}
			if err := out.Send(&understudyv1.WatchEventsResponse{Event: ev}); err != nil {
				return err
			}
		}
	}
}

// NodeStateProto is the API's form of a node's cluster state.
func NodeStateProto(s placement.State) understudyv1.NodeState {
	switch s {
	case placement.Draining:
		return understudyv1.NodeState_NODE_STATE_DRAINING
	case placement.Saturated:
		return understudyv1.NodeState_NODE_STATE_SATURATED
	}
	return understudyv1.NodeState_NODE_STATE_ACTIVE
}

func parseState(s string) placement.State {
	st, err := placement.ParseState(s)
	if err != nil {
		return placement.Active
	}
	return st
}
