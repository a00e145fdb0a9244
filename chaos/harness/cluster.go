package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// The cluster side of the harness: N nodes gossip-joined (one key, each
// joining every other), and what the checkers ask them through the API.

// RejoinHold is the nodes' --rejoin-hold in a cluster: shorter than the
// default 10 s so a restarted node takes its streams back within a
// scenario's minute (the e2e failover test uses 3 s as well).
const RejoinHold = 3 * time.Second

// clusterArgs writes the gossip key and returns the per-node cluster
// flags: --gossip-listen on the node's own address, --join every other
// node, --gossip-key-file.
func (c *Cluster) clusterArgs() error {
	key, err := exec.Command(c.cfg.Bin, "keygen").Output()
	if err != nil {
		return fmt.Errorf("harness: keygen: %w", err)
	}
	keyFile := filepath.Join(c.cfg.Dir, "gossip.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return err
	}
	gossip := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		ip, _, _ := net.SplitHostPort(n.Addr)
		port := netnsGossipPort
		if n.Netns == "" {
			var err error
			if port, err = freePort(ip); err != nil {
				return err
			}
		}
		gossip[i] = net.JoinHostPort(ip, port)
		n.Gossip = gossip[i]
	}
	for i, n := range c.Nodes {
		var join []string
		for j, g := range gossip {
			if j != i {
				join = append(join, g)
			}
		}
		n.args = append(n.args, "--gossip-listen", gossip[i], "--join", strings.Join(join, ","),
			"--gossip-key-file", keyFile, "--rejoin-hold", RejoinHold.String())
	}
	return nil
}

type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

// apiClient carries the admin token; every call is bounded (a frozen
// node does not answer).
var apiClient = &http.Client{Transport: bearer{AdminToken, http.DefaultTransport}, Timeout: 15 * time.Second}

// Recording is the node's RecordingService.
func (n *Node) Recording() understudyv1connect.RecordingServiceClient {
	return understudyv1connect.NewRecordingServiceClient(apiClient, n.URL())
}

// ClusterAPI is the node's ClusterService.
func (n *Node) ClusterAPI() understudyv1connect.ClusterServiceClient {
	return understudyv1connect.NewClusterServiceClient(apiClient, n.URL())
}

// Up reports whether the node runs and is not frozen.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.frozen && !n.aliveAt.IsZero()
}

// Node returns the node of id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// AnyUp returns a node that is up, preferring those after skip.
func (c *Cluster) AnyUp() *Node {
	for _, n := range c.Nodes {
		if n.Up() {
			return n
		}
	}
	return nil
}

// NodeStates returns what node n reports of every member.
func (c *Cluster) NodeStates(ctx context.Context, n *Node) (map[string]understudyv1.NodeState, error) {
	resp, err := n.ClusterAPI().ListNodes(ctx, connect.NewRequest(&understudyv1.ListNodesRequest{}))
	if err != nil {
		return nil, err
	}
	out := map[string]understudyv1.NodeState{}
	for _, m := range resp.Msg.Nodes {
		out[m.Id] = m.State
	}
	return out, nil
}

// Placement returns what node n computes: stream -> its recorders, home
// first.
func (c *Cluster) Placement(ctx context.Context, n *Node) (map[string][]string, error) {
	resp, err := n.ClusterAPI().GetPlacement(ctx, connect.NewRequest(&understudyv1.GetPlacementRequest{}))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, a := range resp.Msg.Assignments {
		out[a.StreamId] = a.NodeIds
	}
	return out, nil
}

// Coverage returns the stretches of stream that node holds itself (its
// own timeline: node filter), of class (UNSPECIFIED: any), in [from, to).
func (c *Cluster) Coverage(ctx context.Context, n *Node, stream string, class understudyv1.SegmentClass, from, to time.Time) ([]Span, error) {
	resp, err := n.Recording().GetTimeline(ctx, connect.NewRequest(&understudyv1.GetTimelineRequest{
		StreamId: stream, Start: timestamppb.New(from), End: timestamppb.New(to), NodeId: n.ID, Class: class}))
	if err != nil {
		return nil, fmt.Errorf("GetTimeline %s on %s: %w", stream, n.ID, err)
	}
	var out []Span
	for _, cv := range resp.Msg.Coverage {
		out = append(out, Span{cv.Start.AsTime(), cv.End.AsTime()})
	}
	return out, nil
}

// Span is [Start, End).
type Span struct{ Start, End time.Time }

func (s Span) String() string {
	return fmt.Sprintf("%s..%s (%.1f s)", s.Start.UTC().Format("15:04:05.000"), s.End.UTC().Format("15:04:05.000"), s.End.Sub(s.Start).Seconds())
}

// Holes returns the parts of [from, to) that no span covers.
func Holes(spans []Span, from, to time.Time) []Span {
	spans = slices.Clone(spans)
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var out []Span
	at := from
	for _, s := range spans {
		if s.Start.After(at) && s.Start.Before(to) {
			out = append(out, Span{at, s.Start})
		}
		if s.End.After(at) {
			at = s.End
		}
	}
	if at.Before(to) {
		out = append(out, Span{at, to})
	}
	return out
}

// liveEdge is how far behind now a recorder's own coverage may end and
// still count as recording: the live edge is the newest durable part
// (about a second), plus the time of the call on a loaded machine.
const liveEdge = 3 * time.Second

// LiveRecorders returns, for each stream, the nodes that are up and whose
// own coverage of it reaches within liveEdge of now and past the node's
// last start or thaw: the recorders that record it now, whatever
// placement says. Sampled every second, so under-replication is measured
// within about liveEdge + 1 s. The nodes are asked at once, each call
// bounded by liveQueryTimeout: a node up but cut off from the network
// would hold a sequential sample for the client's whole timeout per
// stream and hide the under-replication it causes. A node that does not
// answer in time counts as recording nothing in this sample.
func (c *Cluster) LiveRecorders(ctx context.Context, streams []string) map[string][]string {
	now := time.Now()
	records := make([][]bool, len(c.Nodes)) // by node, by stream
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		if !n.Up() {
			continue
		}
		records[i] = make([]bool, len(streams))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Recorded since it last became alive (a restart or a thaw):
			// what it held before is no proof it records now.
			_, starts := n.Alive(now)
			since := now.Add(-liveEdge)
			if len(starts) > 0 && starts[len(starts)-1].After(since) {
				since = starts[len(starts)-1]
			}
			for j, id := range streams {
				qctx, cancel := context.WithTimeout(ctx, liveQueryTimeout)
				cv, err := c.Coverage(qctx, n, id, 0, now.Add(-30*time.Second), now)
				late := qctx.Err() != nil
				cancel()
				if late {
					return // unreachable now: its other streams would wait as long
				}
				records[i][j] = err == nil && len(cv) > 0 && cv[len(cv)-1].End.After(since)
			}
		}()
	}
	wg.Wait()
	out := make(map[string][]string, len(streams))
	for j, id := range streams {
		out[id] = nil
		for i, n := range c.Nodes {
			if records[i] != nil && records[i][j] {
				out[id] = append(out[id], n.ID)
			}
		}
	}
	return out
}

// liveQueryTimeout bounds one coverage query of LiveRecorders: generous
// for a loaded 2-core machine (a query takes milliseconds), short against
// the 1 s sampling.
const liveQueryTimeout = 2 * time.Second

// lastCoverage says, for each node that is up, where its own coverage of
// stream over the last 30 s ends, so that a failed live-recorder check
// shows whether the node stopped recording or its timeline lags.
func (c *Cluster) lastCoverage(ctx context.Context, stream string) string {
	now := time.Now()
	var parts []string
	for _, n := range c.Nodes {
		if !n.Up() {
			continue
		}
		cv, err := c.Coverage(ctx, n, stream, 0, now.Add(-30*time.Second), now)
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", n.ID, err))
		case len(cv) == 0:
			parts = append(parts, n.ID+": nothing in the last 30 s")
		default:
			end := cv[len(cv)-1].End
			_, starts := n.Alive(now)
			since := ""
			if len(starts) > 0 {
				since = fmt.Sprintf(", up since %s", starts[len(starts)-1].UTC().Format("15:04:05.000"))
			}
			parts = append(parts, fmt.Sprintf("%s: coverage ends %s, %.1f s ago%s", n.ID, end.UTC().Format("15:04:05.000"), now.Sub(end).Seconds(), since))
		}
	}
	return strings.Join(parts, "; ")
}

// WaitMembers waits until every node that is up sees every node active.
func (c *Cluster) WaitMembers(ctx context.Context, timeout time.Duration) error {
	return waitFor(ctx, timeout, "every node sees every node active", func() (bool, string) {
		for _, n := range c.Nodes {
			if !n.Up() {
				continue
			}
			st, err := c.NodeStates(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range c.Nodes {
				if st[m.ID] != understudyv1.NodeState_NODE_STATE_ACTIVE {
					return false, fmt.Sprintf("%s sees %s %v", n.ID, m.ID, st[m.ID])
				}
			}
		}
		return true, ""
	})
}

// WaitReplicated waits until every node that is up computes the same
// placement with r nodes per stream, every placed node up, and each of
// them records the stream (LiveRecorders). It returns the placement.
func (c *Cluster) WaitReplicated(ctx context.Context, streams []string, r int, timeout time.Duration) (map[string][]string, error) {
	var place map[string][]string
	err := waitFor(ctx, timeout, fmt.Sprintf("%d live recorders of every stream, as placed", r), func() (bool, string) {
		var first *Node
		for _, n := range c.Nodes {
			if !n.Up() {
				continue
			}
			p, err := c.Placement(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			if first == nil {
				first, place = n, p
			}
			for _, id := range streams {
				if len(p[id]) != r {
					return false, fmt.Sprintf("%s places %s on %v", n.ID, id, p[id])
				}
				if !slices.Equal(p[id], place[id]) {
					return false, fmt.Sprintf("%s places %s on %v, %s on %v", n.ID, id, p[id], first.ID, place[id])
				}
				for _, nd := range p[id] {
					if m := c.Node(nd); m == nil || !m.Up() {
						return false, fmt.Sprintf("%s places %s on %s, which is not up", n.ID, id, nd)
					}
				}
			}
		}
		if first == nil {
			return false, "no node up"
		}
		live := c.LiveRecorders(ctx, streams)
		for _, id := range streams {
			for _, nd := range place[id] {
				if !slices.Contains(live[id], nd) {
					return false, fmt.Sprintf("%s placed on %v, recorded now by %v (%s)", id, place[id], live[id], c.lastCoverage(ctx, id))
				}
			}
		}
		return true, ""
	})
	return place, err
}

// waitFor polls cond every 500 ms until it holds, timeout passes or ctx
// ends; the error says what cond said last.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: %s: not after %v: %s", what, timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Fsck runs `understudy fsck` on the data directory of a node that is not
// running; it returns the output and whether it was clean (exit 0).
func (c *Cluster) Fsck(ctx context.Context, n *Node) (string, bool) {
	out, err := exec.CommandContext(ctx, c.cfg.Bin, "fsck", "--data-dir", n.DataDir).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// ExportOffline runs `understudy export` on the data directory of a node
// that is not running: the clip of [from, to) from that node's own
// segments only (archive, buffer and backfilled alike).
func (c *Cluster) ExportOffline(ctx context.Context, n *Node, stream string, from, to time.Time) ([]byte, error) {
	f, err := os.CreateTemp(c.cfg.Dir, "own-*.mp4")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	out, err := exec.CommandContext(ctx, c.cfg.Bin, "export", "--data-dir", n.DataDir, "--stream", stream,
		"--from", from.UTC().Format(time.RFC3339Nano), "--to", to.UTC().Format(time.RFC3339Nano), "-o", path, "--force").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("harness: export %s from %s's data directory: %v: %s", stream, n.ID, err, bytes.TrimSpace(out))
	}
	return os.ReadFile(path)
}

// SetState makes n draining or active again (UpdateNode through n).
func (c *Cluster) SetState(ctx context.Context, n *Node, state understudyv1.NodeState) error {
	_, err := n.ClusterAPI().UpdateNode(ctx, connect.NewRequest(&understudyv1.UpdateNodeRequest{NodeId: n.ID, State: state}))
	if err != nil {
		return fmt.Errorf("harness: %s %v: %w", n.ID, state, err)
	}
	return nil
}

// CutGossip cuts the node off from every peer's gossip (SIGUSR1 to a
// node of a chaosfaults build started with UNDERSTUDY_CHAOS_FAULTS
// including gossip-cut; a normal build would die of the signal). The node
// stays alive: it keeps recording and answering the API.
func (n *Node) CutGossip() error { return n.CutGossipExcept() }

// CutGossipExcept cuts the node off from the gossip of every peer but
// those given (the other nodes of its failure domain, cut off with it):
// it writes their hosts to the node's chaos-gossip-allow file, then
// sends SIGUSR1.
func (n *Node) CutGossipExcept(peers ...*Node) error {
	var hosts []string
	for _, p := range peers {
		h, _, _ := net.SplitHostPort(p.Gossip)
		hosts = append(hosts, h)
	}
	if err := writeControl(filepath.Join(n.DataDir, gossipAllowFile), strings.Join(hosts, "\n")+"\n"); err != nil {
		return fmt.Errorf("harness: %s: %w", n.ID, err)
	}
	_, err := n.signal(syscall.SIGUSR1, false)
	return err
}

// HealGossip ends CutGossip (SIGUSR2).
func (n *Node) HealGossip() error {
	_, err := n.signal(syscall.SIGUSR2, false)
	return err
}
