package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"text/tabwriter"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

// inspectOut is where the inspection commands print (tests replace it).
var inspectOut io.Writer = os.Stdout

func init() {
	register("segments", "list the segments, coverage and gaps of a stream", runSegments)
}

// timeFlag is a --from / --to flag of the local inspection commands: the
// times ctl reads (RFC 3339, now, now-DUR), against one reference "now"
// shared by the flags of a command. Unset means unbounded.
type timeFlag struct {
	now time.Time
	t   time.Time
}

// newTimeFlag returns a --from and a --to flag relative to now.
func newTimeFlag(now time.Time) (from, to *timeFlag) {
	return &timeFlag{now: now}, &timeFlag{now: now}
}

// The index keeps times as int64 nanoseconds since 1970, so later times
// cannot be looked up at all, and an earlier one makes a gap longer than a
// time.Duration holds. Nothing was recorded before 1970: such times are
// refused rather than clamped, so that a typo is an error and not an
// answer about another range.
var (
	minFlagTime = time.Unix(0, 0).UTC()
	maxFlagTime = time.Unix(0, math.MaxInt64).UTC()
)

func (f *timeFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Set(s string) error {
	t, err := parseCtlTime(s, f.now)
	if err != nil {
		return err
	}
	if t.Before(minFlagTime) || t.After(maxFlagTime) {
		return fmt.Errorf("out of range: times must lie between %s and %s",
			minFlagTime.Format(time.RFC3339), maxFlagTime.Truncate(time.Second).Format(time.RFC3339))
	}
	f.t = t
	return nil
}

type jsonInterval struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type jsonSegment struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	Bytes    int64  `json:"bytes"`
	Path     string `json:"path"`
	Checksum string `json:"checksum"`
	Class    string `json:"class"`
	Origin   string `json:"origin"`
}

// storeLog is the store's logger in the inspection commands: they print
// every error the store returns, which its log would only repeat.
var storeLog = slog.New(slog.DiscardHandler)

// storeErr prints the error of an inspection command on the store in
// dataDir. A corrupt index gets the command that rebuilds it, not Pebble's
// story of how it found out.
func storeErr(cmd, dataDir string, err error) {
	var ce *segment.IndexCorruptError
	if errors.As(err, &ce) {
		fmt.Fprintf(os.Stderr, "%s: %v: %s\n", cmd, ce, repairHint(dataDir))
		return
	}
	fmt.Fprintln(os.Stderr, cmd+":", err)
}

// repairHint is what to do about a corrupt index in dataDir.
func repairHint(dataDir string) string {
	return fmt.Sprintf("run 'understudy fsck --repair --data-dir %s' to rebuild it from the segment files", dataDir)
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func jsonIntervals(ivs []segment.Interval) []jsonInterval {
	out := make([]jsonInterval, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, jsonInterval{fmtTime(iv.Start), fmtTime(iv.End)})
	}
	return out
}

func runSegments(args []string) int {
	fs := flag.NewFlagSet("segments", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory of the node (required)")
	stream := fs.String("stream", "", "stream id (required)")
	from, to := newTimeFlag(time.Now())
	fs.Var(from, "from", "start of the range: RFC 3339, now or now-DUR (default: the first segment)")
	fs.Var(to, "to", "end of the range: RFC 3339, now or now-DUR (default: the last segment)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *dataDir == "" || *stream == "" {
		fmt.Fprintln(os.Stderr, "segments: --data-dir and --stream are required")
		return 2
	}
	if !from.t.IsZero() && !to.t.IsZero() && !to.t.After(from.t) {
		fmt.Fprintln(os.Stderr, "segments: --to must be after --from")
		return 2
	}
	s, err := segment.Open(segment.Options{Dir: *dataDir, ReadOnly: true, Logger: storeLog})
	if err != nil {
		storeErr("segments", *dataDir, err)
		return 1
	}
	defer s.Close()
	segs, err := s.Segments(*stream, from.t, to.t)
	if err != nil {
		storeErr("segments", *dataDir, err)
		return 1
	}
	cov, err := s.Coverage(*stream, from.t, to.t)
	if err != nil {
		storeErr("segments", *dataDir, err)
		return 1
	}
	gaps, err := s.Gaps(*stream, from.t, to.t)
	if err != nil {
		storeErr("segments", *dataDir, err)
		return 1
	}
	if *asJSON {
		out := struct {
			Segments []jsonSegment  `json:"segments"`
			Coverage []jsonInterval `json:"coverage"`
			Gaps     []jsonInterval `json:"gaps"`
		}{Segments: []jsonSegment{}, Coverage: jsonIntervals(cov), Gaps: jsonIntervals(gaps)}
		for _, sg := range segs {
			out.Segments = append(out.Segments, jsonSegment{fmtTime(sg.Start), fmtTime(sg.End), sg.Bytes, sg.Path,
				sg.Checksum, sg.Class.String(), sg.Origin.String()})
		}
		enc := json.NewEncoder(inspectOut)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, "segments:", err)
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(inspectOut, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tEND\tDURATION\tBYTES\tCLASS\tORIGIN\tCHECKSUM\tPATH")
	var total int64
	for _, sg := range segs {
		sum := sg.Checksum
		if sum == "" {
			sum = "(open)"
		} else if len(sum) > 19 {
			sum = sum[:19] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", fmtTime(sg.Start), fmtTime(sg.End),
			sg.End.Sub(sg.Start).Round(time.Millisecond), sg.Bytes, sg.Class, sg.Origin, sum, sg.Path)
		total += sg.Bytes
	}
	tw.Flush()
	var covered, missing time.Duration
	fmt.Fprintln(inspectOut, "\ncoverage:")
	for _, iv := range cov {
		covered += iv.Duration()
		fmt.Fprintf(inspectOut, "  %s .. %s  (%s)\n", fmtTime(iv.Start), fmtTime(iv.End), iv.Duration().Round(time.Millisecond))
	}
	if len(gaps) > 0 {
		fmt.Fprintln(inspectOut, "gaps:")
	}
	for _, iv := range gaps {
		missing += iv.Duration()
		fmt.Fprintf(inspectOut, "  %s .. %s  (%s)\n", fmtTime(iv.Start), fmtTime(iv.End), iv.Duration().Round(time.Millisecond))
	}
	fmt.Fprintf(inspectOut, "\n%d segments, %d bytes, covered %.3f s, gaps %.3f s\n", len(segs), total, covered.Seconds(), missing.Seconds())
	return 0
}
