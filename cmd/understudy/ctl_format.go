package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// ctlJSON is how --json prints responses: proto field names (node_ids,
// api_address...), enums by name, timestamps in RFC 3339, durations as
// "2592000s", 64-bit integers as strings (protojson rules). Scalars, lists
// and maps are printed even when empty or zero (so "coverage": [] and
// "gaps": [] are always there); unset message fields are left out.
var ctlJSON = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// marshalCtlJSON returns m as JSON with stable spacing (protojson varies its
// whitespace on purpose): indented, or on one line for streams of messages
// (JSON Lines).
func marshalCtlJSON(m proto.Message, indent bool) ([]byte, error) {
	b, err := ctlJSON.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if indent {
		err = json.Indent(&out, b, "", "  ")
	} else {
		err = json.Compact(&out, b)
	}
	if err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeCtlJSON(w io.Writer, m proto.Message) error {
	b, err := marshalCtlJSON(m, true)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// fmtCtlTime prints a timestamp in UTC, RFC 3339 with milliseconds; "-"
// when unset.
func fmtCtlTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// fmtCtlDuration prints d rounded to the millisecond.
func fmtCtlDuration(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

// fmtCtlBytes prints a byte count with binary prefixes.
func fmtCtlBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ctlEnumName strips an enum value's prefix and lowercases it:
// NODE_STATE_ACTIVE → active.
func ctlEnumName(full, prefix string) string {
	s := strings.TrimPrefix(full, prefix)
	if s == "UNSPECIFIED" {
		return "-"
	}
	return strings.ToLower(s)
}

func fmtCtlLabels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	return ctlLabels(m).String()
}

func ctlDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCtlTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeCtlStreams prints streams as a table.
func writeCtlStreams(w io.Writer, streams []*understudyv1.Stream) error {
	tw := newCtlTable(w)
	fmt.Fprintln(tw, "ID\tSTATE\tSINCE\tLAST FRAME\tRECORDERS\tR\tRETENTION\tCREDENTIALS\tURL\tLABELS")
	var reasons []string
	for _, s := range streams {
		st := s.GetStatus()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.GetId(), ctlStateName(st.GetState()),
			fmtCtlTime(st.GetSince()), fmtCtlTime(st.GetLastFrameTime()), fmtCtlRecorders(st.GetRecorders()),
			ctlReplicas(s.GetReplicas()), ctlRetention(s), ctlYesNo(s.GetHasCredentials()), s.GetUrl(), fmtCtlLabels(s.GetLabels()))
		if st.GetReason() != "" && st.GetState() != understudyv1.StreamState_STREAM_STATE_DISABLED {
			reasons = append(reasons, fmt.Sprintf("  %s: %s", s.GetId(), st.GetReason()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(reasons) > 0 {
		fmt.Fprintf(w, "\nwhy:\n%s\n", strings.Join(reasons, "\n"))
	}
	return nil
}

// ctlStateName is a stream state as the CLI prints it: camera_unreachable.
func ctlStateName(s understudyv1.StreamState) string {
	return strings.ToLower(ctlEnumName(s.String(), "STREAM_STATE_"))
}

// fmtCtlRecorders prints recorders as node:role:state, home first;
// "recording" is left out.
func fmtCtlRecorders(rs []*understudyv1.Recorder) string {
	var parts []string
	for _, r := range rs {
		p := r.GetNodeId() + ":" + r.GetRole()
		if r.GetState() != understudyv1.StreamState_STREAM_STATE_RECORDING {
			p += ":" + ctlStateName(r.GetState())
		}
		parts = append(parts, p)
	}
	return ctlDash(strings.Join(parts, ","))
}

// writeCtlStream prints one stream as "field: value" lines.
func writeCtlStream(w io.Writer, s *understudyv1.Stream) error {
	tw := newCtlTable(w)
	fmt.Fprintf(tw, "id:\t%s\n", s.GetId())
	fmt.Fprintf(tw, "url:\t%s\n", s.GetUrl())
	fmt.Fprintf(tw, "enabled:\t%t\n", s.GetEnabled())
	fmt.Fprintf(tw, "replicas:\t%s\n", ctlReplicas(s.GetReplicas()))
	fmt.Fprintf(tw, "archive retention:\t%s\n", ctlRetention(s))
	fmt.Fprintf(tw, "credentials:\t%s\n", ctlYesNo(s.GetHasCredentials()))
	fmt.Fprintf(tw, "weight:\t%d\n", max(s.GetWeight(), 1))
	if s.GetScope() != "" {
		strict := "preferred: the nearest nodes outside when it lacks nodes"
		if s.GetStrictScope() {
			strict = "strict: never outside"
		}
		fmt.Fprintf(tw, "scope:\t%s (%s)\n", s.GetScope(), strict)
	}
	fmt.Fprintf(tw, "labels:\t%s\n", fmtCtlLabels(s.GetLabels()))
	fmt.Fprintf(tw, "created:\t%s\n", fmtCtlTime(s.GetCreateTime()))
	fmt.Fprintf(tw, "updated:\t%s\n", fmtCtlTime(s.GetUpdateTime()))
	if st := s.GetStatus(); st != nil {
		fmt.Fprintf(tw, "state:\t%s\n", ctlStateName(st.GetState()))
		if st.GetReason() != "" {
			fmt.Fprintf(tw, "reason:\t%s\n", st.GetReason())
		}
		fmt.Fprintf(tw, "since:\t%s\n", fmtCtlTime(st.GetSince()))
		fmt.Fprintf(tw, "last frame:\t%s\n", fmtCtlTime(st.GetLastFrameTime()))
		for _, r := range st.GetRecorders() {
			line := fmt.Sprintf("%s %s %s since %s, last frame %s", r.GetNodeId(), r.GetRole(), ctlStateName(r.GetState()),
				fmtCtlTime(r.GetSince()), fmtCtlTime(r.GetLastFrameTime()))
			if r.GetReason() != "" && r.GetReason() != st.GetReason() {
				line += ": " + r.GetReason()
			}
			fmt.Fprintf(tw, "recorder:\t%s\n", line)
		}
	}
	return tw.Flush()
}

func ctlReplicas(r uint32) string {
	if r == 0 {
		return "default"
	}
	return fmt.Sprint(r)
}

func ctlRetention(s *understudyv1.Stream) string {
	if s.GetArchiveRetention() == nil || s.GetArchiveRetention().AsDuration() == 0 {
		return "default"
	}
	return fmtCtlRetention(s.GetArchiveRetention().AsDuration())
}

func ctlYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeCtlTimeline prints coverage and gaps as one table in time order,
// then the totals.
func writeCtlTimeline(w io.Writer, tl *understudyv1.GetTimelineResponse) error {
	type row struct {
		start, end *timestamppb.Timestamp
		status     string
		detail     string
	}
	var rows []row
	var covered, source, system time.Duration
	for _, c := range tl.GetCoverage() {
		d := c.GetEnd().AsTime().Sub(c.GetStart().AsTime())
		covered += d
		detail := strings.Join(c.GetNodeIds(), ",")
		if o := ctlEnumName(c.GetOrigin().String(), "ORIGIN_"); o != "-" {
			detail += " (" + o + ")"
		}
		rows = append(rows, row{c.GetStart(), c.GetEnd(), "recorded", detail})
	}
	for _, g := range tl.GetGaps() {
		d := g.GetEnd().AsTime().Sub(g.GetStart().AsTime())
		switch g.GetKind() {
		case understudyv1.GapKind_GAP_KIND_SOURCE:
			source += d
		default:
			system += d
		}
		rows = append(rows, row{g.GetStart(), g.GetEnd(), "gap", ctlEnumName(g.GetKind().String(), "GAP_KIND_")})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].start.AsTime().Before(rows[j].start.AsTime()) })
	tw := newCtlTable(w)
	fmt.Fprintln(tw, "START\tEND\tDURATION\tSTATUS\tNODES / GAP KIND")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", fmtCtlTime(r.start), fmtCtlTime(r.end),
			fmtCtlDuration(r.end.AsTime().Sub(r.start.AsTime())), r.status, r.detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	total := covered + source + system
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(covered) / float64(total)
	}
	_, err := fmt.Fprintf(w, "\ntotal %s: recorded %s (%.2f%%) in %d intervals, gaps %s in %d (source %s, system %s)\n",
		fmtCtlDuration(total), fmtCtlDuration(covered), pct, len(tl.GetCoverage()),
		fmtCtlDuration(source+system), len(tl.GetGaps()), fmtCtlDuration(source), fmtCtlDuration(system))
	return err
}

// writeCtlNodes prints nodes as a table.
func writeCtlNodes(w io.Writer, nodes []*understudyv1.Node) error {
	tw := newCtlTable(w)
	fmt.Fprintln(tw, "ID\tSTATE\tDOMAIN\tAPI\tHOME\tREPLICA\tCPU\tFS USED\tFS FREE\tWEIGHT\tVERSION\tSTATS AT")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.1f%%\t%s\t%s\t%g\t%s\t%s\n", n.GetId(),
			ctlEnumName(n.GetState().String(), "NODE_STATE_"), ctlDash(n.GetDomain()), ctlDash(n.GetApiAddress()),
			n.GetHomeStreams(), n.GetReplicaStreams(), n.GetCpuPercent(), fmtCtlBytes(n.GetDiskUsedBytes()),
			fmtCtlBytes(n.GetDiskFreeBytes()), n.GetCapacity(), ctlDash(n.GetVersion()), fmtCtlTime(n.GetStatsTime()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, ctlNodesLegend)
	return err
}

// ctlNodesLegend says what the columns of the nodes table mean.
const ctlNodesLegend = `
HOME, REPLICA  streams the node records as home (into its archive) and as replica (into its buffer)
CPU            the node process's CPU use, percent of the whole machine
FS USED, FREE  the whole file system of the node's data directory (Understudy's data and anything else on it); free is what non-root users may still write
WEIGHT         capacity weight: placement gives each node a share of streams in proportion to it
STATS AT       when the node measured these figures (others' come by gossip, every 5 s)
`

// writeCtlPlacement prints assignments as a table; a stream with fewer
// nodes than it asks for is marked.
func writeCtlPlacement(w io.Writer, as []*understudyv1.Assignment) error {
	tw := newCtlTable(w)
	fmt.Fprintln(tw, "STREAM\tR\tHOME\tREPLICAS\tNOTE")
	for _, a := range as {
		home, replicas := "-", "-"
		if ids := a.GetNodeIds(); len(ids) > 0 {
			home = ids[0]
			if len(ids) > 1 {
				replicas = strings.Join(ids[1:], ",")
			}
		}
		note := "-"
		if n := uint32(len(a.GetNodeIds())); n < a.GetReplicas() {
			note = fmt.Sprintf("under-replicated: %d of %d", n, a.GetReplicas())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", a.GetStreamId(), a.GetReplicas(), home, replicas, note)
	}
	return tw.Flush()
}

// fmtCtlEvent prints an event on one line: time, kind, stream, node,
// message, then the details sorted by key.
func fmtCtlEvent(e *understudyv1.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", fmtCtlTime(e.GetTime()), ctlEnumName(e.GetKind().String(), "EVENT_KIND_"))
	if e.GetStreamId() != "" {
		fmt.Fprintf(&b, " stream=%s", e.GetStreamId())
	}
	if e.GetNodeId() != "" {
		fmt.Fprintf(&b, " node=%s", e.GetNodeId())
	}
	if e.GetMessage() != "" {
		fmt.Fprintf(&b, " %q", e.GetMessage())
	}
	keys := make([]string, 0, len(e.GetDetails()))
	for k := range e.GetDetails() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := e.GetDetails()[k]
		if k == "reason" && strings.HasSuffix(e.GetMessage(), v) {
			continue // said once, in the message
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}
