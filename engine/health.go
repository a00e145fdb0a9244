package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/reconcile"
	"github.com/understudy-nvr/understudy/engine/session"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// Stream health: what each stream's recorders are doing now, for
// ListStreams, GetStream and the per-state gauge. A node knows its own
// sessions; of the other recorders the API asks each one (GetStream or
// ListStreams with node_id set to that node, which answers from its own
// sessions only: package api's peerRecorders) and, when one does not
// answer, the node goes by its gossiped status: recording, or placed there
// and not recorded.

func failureState(f session.Failure) understudyv1.StreamState {
	switch f {
	case session.FailureUnreachable:
		return understudyv1.StreamState_STREAM_STATE_CAMERA_UNREACHABLE
	case session.FailureAuth:
		return understudyv1.StreamState_STREAM_STATE_CAMERA_AUTH_FAILED
	case session.FailureNotFound:
		return understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND
	case session.FailureCodec:
		return understudyv1.StreamState_STREAM_STATE_UNSUPPORTED_CODEC
	}
	return understudyv1.StreamState_STREAM_STATE_FAILING
}

// failureHint is what an operator does about a failure, added to the
// error in a status's reason.
func failureHint(f session.Failure) string {
	switch f {
	case session.FailureAuth:
		return "the camera refuses the credentials: set or fix them"
	case session.FailureNotFound:
		return "the camera has no stream at this path: fix the URL"
	}
	return ""
}

// StateName is the short name of a state, as the gauge's label and the
// CLI print it: "camera_unreachable".
func StateName(s understudyv1.StreamState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STREAM_STATE_"))
}

// gaugeStates are the states the per-state gauge reports, each always
// present (0 when no stream is in it), so an alert sees a value.
var gaugeStates = []understudyv1.StreamState{
	understudyv1.StreamState_STREAM_STATE_RECORDING,
	understudyv1.StreamState_STREAM_STATE_STARTING,
	understudyv1.StreamState_STREAM_STATE_CAMERA_UNREACHABLE,
	understudyv1.StreamState_STREAM_STATE_CAMERA_AUTH_FAILED,
	understudyv1.StreamState_STREAM_STATE_CAMERA_NOT_FOUND,
	understudyv1.StreamState_STREAM_STATE_UNSUPPORTED_CODEC,
	understudyv1.StreamState_STREAM_STATE_FAILING,
	understudyv1.StreamState_STREAM_STATE_NOT_PLACED,
	understudyv1.StreamState_STREAM_STATE_DISABLED,
}

func tsOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// localRecorder is this node's recording of a stream, or nil when the
// node neither runs a session for it nor is placed to.
func (n *Node) localRecorder(id string, place []string) *understudyv1.Recorder {
	n.mu.Lock()
	rs, ok := n.sessions[id]
	var role reconcile.Role
	if ok {
		role = rs.role // changed by reconcile under n.mu
	}
	n.mu.Unlock()
	if !ok {
		i := slices.Index(place, n.cfg.ID)
		if i < 0 {
			return nil
		}
		// Placed here, and the next reconcile round starts it.
		return &understudyv1.Recorder{NodeId: n.cfg.ID, Role: roleName(i), State: understudyv1.StreamState_STREAM_STATE_STARTING,
			Reason: "not started yet"}
	}
	st := rs.sess.Stats()
	r := &understudyv1.Recorder{NodeId: n.cfg.ID, Role: role.String(), LastFrameTime: tsOrNil(st.LastFrame)}
	switch {
	case st.Connected && rs.sess.Recording():
		r.State, r.Since = understudyv1.StreamState_STREAM_STATE_RECORDING, tsOrNil(st.ConnectedSince)
	case st.Connected:
		r.State, r.Since = understudyv1.StreamState_STREAM_STATE_FAILING, tsOrNil(st.ConnectedSince)
		r.Reason = "frames arrive but do not reach the disk (queue overflow or write errors)"
		if st.Frames == 0 && st.WriteErrors == 0 {
			r.State, r.Reason = understudyv1.StreamState_STREAM_STATE_STARTING, "frames arrive, the first is being written"
		}
	case st.Playing:
		// New, or back after a failure: the camera answered PLAY. (Since
		// when is known only for a new session.)
		r.State = understudyv1.StreamState_STREAM_STATE_STARTING
		if st.Failure == session.FailureNone && st.ConnectedSince.IsZero() {
			r.Since = tsOrNil(rs.started)
		}
		r.Reason = "connected, waiting for the first keyframe"
	case st.Failure != session.FailureNone:
		r.State, r.Since = failureState(st.Failure), tsOrNil(st.FailingSince)
		r.Reason = st.LastError
		if h := failureHint(st.Failure); h != "" {
			r.Reason = h + " (" + st.LastError + ")"
		}
	default:
		r.State, r.Since = understudyv1.StreamState_STREAM_STATE_STARTING, tsOrNil(rs.started)
		r.Reason = "connecting to the camera"
	}
	return r
}

func roleName(i int) string {
	if i == 0 {
		return "home"
	}
	return "replica"
}

// healthView is what the status of every stream of one answer is judged
// against, read once per answer: the peers' gossiped statuses, this
// node's placement digest and the number of live members.
type healthView struct {
	statuses map[string]clusterStatus
	digest   uint64
	live     int
	now      time.Time
}

func (n *Node) healthView() healthView {
	v := healthView{live: len(n.members()), now: time.Now()}
	if n.cl != nil {
		v.statuses = n.gossipedStatuses()
	}
	n.placeMu.Lock()
	v.digest = n.digest
	n.placeMu.Unlock()
	return v
}

// streamStatus computes the status of s. peer holds the recorders other
// nodes reported for s (by node id); a recorder placed on a node absent
// from it is judged by that node's gossiped status. localOnly: only this
// node's own recording.
func (n *Node) streamStatus(v healthView, s catalog.Stream, place []string, peer map[string]*understudyv1.Recorder, localOnly bool) *understudyv1.StreamStatus {
	st := &understudyv1.StreamStatus{}
	if !s.Enabled {
		st.State, st.Reason, st.Since = understudyv1.StreamState_STREAM_STATE_DISABLED, "disabled by an operator", tsOrNil(s.UpdateTime)
		return st
	}
	if localOnly {
		if r := n.localRecorder(s.ID, place); r != nil {
			st.Recorders = []*understudyv1.Recorder{r}
			st.State, st.Reason, st.Since, st.LastFrameTime = r.State, r.Reason, r.Since, r.LastFrameTime
		} else {
			st.State, st.Reason = understudyv1.StreamState_STREAM_STATE_NOT_PLACED, "not placed on "+n.cfg.ID
		}
		return st
	}
	if len(place) == 0 {
		st.State, st.Reason = understudyv1.StreamState_STREAM_STATE_NOT_PLACED, "placement puts it on no live node"
		return st
	}
	for i, nd := range place {
		var r *understudyv1.Recorder
		switch {
		case nd == n.cfg.ID:
			r = n.localRecorder(s.ID, place)
		case peer[nd] != nil:
			r = peer[nd]
			if r.Role == "" {
				r.Role = roleName(i)
			}
		default:
			r = &understudyv1.Recorder{NodeId: nd, Role: roleName(i), State: understudyv1.StreamState_STREAM_STATE_UNKNOWN,
				Reason: "the node did not answer and has gossiped no status"}
			if g, ok := v.statuses[nd]; ok && v.now.Sub(g.time) < statusStale && g.digest == v.digest && !g.truncated {
				if slices.Contains(g.missing, s.ID) {
					r.State, r.Reason = understudyv1.StreamState_STREAM_STATE_FAILING, "not recording, says its gossiped status (the node did not answer)"
				} else {
					r.State, r.Reason = understudyv1.StreamState_STREAM_STATE_RECORDING, ""
				}
			}
		}
		if r == nil { // placed here by a newer round than the sessions'
			r = &understudyv1.Recorder{NodeId: nd, Role: roleName(i), State: understudyv1.StreamState_STREAM_STATE_STARTING, Reason: "not started yet"}
		}
		st.Recorders = append(st.Recorders, r)
	}
	var recording []*understudyv1.Recorder
	var last time.Time
	for _, r := range st.Recorders {
		if r.State == understudyv1.StreamState_STREAM_STATE_RECORDING {
			recording = append(recording, r)
		}
		if r.LastFrameTime != nil && r.LastFrameTime.AsTime().After(last) {
			last = r.LastFrameTime.AsTime()
		}
	}
	st.LastFrameTime = tsOrNil(last)
	want := s.Replicas
	if want > v.live {
		want = v.live
	}
	switch {
	case len(recording) == len(st.Recorders) && len(recording) >= want:
		st.State = understudyv1.StreamState_STREAM_STATE_RECORDING
		st.Since = latest(recording)
	case len(recording) > 0:
		st.State = understudyv1.StreamState_STREAM_STATE_UNDER_REPLICATED
		var why []string
		for _, r := range st.Recorders {
			if r.State != understudyv1.StreamState_STREAM_STATE_RECORDING {
				why = append(why, fmt.Sprintf("%s: %s", r.NodeId, describeRecorder(r)))
			}
		}
		if len(why) == 0 {
			why = []string{fmt.Sprintf("%d placed, %d wanted", len(st.Recorders), want)}
		}
		st.Reason = fmt.Sprintf("%d of %d recorders receive media; %s", len(recording), want, strings.Join(why, "; "))
		var short []*understudyv1.Recorder
		for _, r := range st.Recorders {
			if r.State != understudyv1.StreamState_STREAM_STATE_RECORDING {
				short = append(short, r)
			}
		}
		if len(short) > 0 {
			st.Since = latest(short)
		}
	default:
		// Nobody records: the camera's own state, as the first recorder
		// that knows it (home first) sees it.
		pick := st.Recorders[0]
		for _, r := range st.Recorders {
			if r.State != understudyv1.StreamState_STREAM_STATE_UNKNOWN {
				pick = r
				break
			}
		}
		st.State, st.Reason, st.Since = pick.State, pick.Reason, pick.Since
	}
	return st
}

// latest is the newest since of the recorders (the moment all of them
// were recording), or nil when one is not known.
func latest(rs []*understudyv1.Recorder) *timestamppb.Timestamp {
	var t time.Time
	for _, r := range rs {
		if r.Since == nil {
			return nil
		}
		if r.Since.AsTime().After(t) {
			t = r.Since.AsTime()
		}
	}
	return tsOrNil(t)
}

func describeRecorder(r *understudyv1.Recorder) string {
	if r.Reason == "" {
		return StateName(r.State)
	}
	return StateName(r.State) + ": " + r.Reason
}

// clusterStatus is the part of a peer's gossiped status the health view
// reads.
type clusterStatus struct {
	digest    uint64
	missing   []string
	truncated bool
	time      time.Time
}

func (n *Node) gossipedStatuses() map[string]clusterStatus {
	out := map[string]clusterStatus{}
	for id, s := range n.cl.Statuses() {
		out[id] = clusterStatus{digest: s.Digest, missing: s.Missing, truncated: s.Truncated, time: s.Time}
	}
	return out
}

// stateCounts counts the streams by state for the gauge: this node's own
// recordings by their state, and the catalog's disabled and not placed
// streams (the same on every node).
func (n *Node) stateCounts() map[understudyv1.StreamState]int {
	out := map[understudyv1.StreamState]int{}
	place := n.Placement()
	for _, e := range n.catalog.Entries() {
		s := e.Stream
		if e.Deleted || !catalog.IsStreamEntryID(e.ID) {
			continue
		}
		if !s.Enabled {
			out[understudyv1.StreamState_STREAM_STATE_DISABLED]++
			continue
		}
		if len(place[s.ID]) == 0 {
			out[understudyv1.StreamState_STREAM_STATE_NOT_PLACED]++
			continue
		}
		if r := n.localRecorder(s.ID, place[s.ID]); r != nil {
			out[r.State]++
		}
	}
	return out
}
