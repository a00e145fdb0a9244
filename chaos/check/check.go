package check

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

// Interval is [Start, End) in the machine's clock.
type Interval struct{ Start, End time.Time }

func (iv Interval) contains(t time.Time) bool { return !t.Before(iv.Start) && t.Before(iv.End) }

// Options say what a recording is checked against.
type Options struct {
	// Stream names the report.
	Stream string
	// Camera is the camera number every frame must carry.
	Camera int
	// From and To bound the frames checked, by their time (the machine's
	// clock: camera time less the logged skew). Frames of the recording
	// outside it still count for duplicates and order. Both required.
	From, To time.Time
	// Down are the windows in which no recorder of the stream was alive:
	// frames of them that are missing are "no recorder", not lost.
	Down []Interval
	// InFlight are windows just before a recorder crashed (SIGKILL) or
	// was frozen (SIGSTOP): the store promises to lose at most the part
	// it was writing, a frozen recorder what it had not read yet, so
	// frames missing there are "in flight", counted apart, not lost. Give
	// them only where no other recorder had the stream.
	InFlight []Interval
	// StartGrace bounds how long after a recorder came back (the end of a
	// Down window, and each of Starts) missing frames are "starting", not
	// lost: until the first IDR frame the camera sent after a reader
	// connected (a recorder cannot record before a keyframe), at most
	// StartGrace. Default 5 s.
	StartGrace time.Duration
	// Starts are further times a recorder began (a node started without a
	// Down window before it).
	Starts []time.Time
	// MaxSkew is how far a frame's time in the file (from the first
	// frame) may be from its camera time (from the first frame) before it
	// counts as a timing error. Default 100 ms.
	MaxSkew time.Duration
}

// Range is a run of consecutive frame numbers and their times.
type Range struct {
	First, Last uint64
	Start, End  time.Time
}

// Report is the verdict on one recording.
type Report struct {
	Stream string
	// Generated counts the frame numbers in [From, To) in the send log;
	// Sent those sent.
	Generated, Sent int
	// Present counts the frames in [From, To) found in the recording.
	Present int
	// Lost counts frames missing outside every excuse; LostRanges lists
	// them; SecondsLost is Lost at the camera's frame rate.
	Lost        int
	LostRanges  []Range
	SecondsLost float64
	// Excused absences: no recorder alive, recorder starting (before its
	// first keyframe), and the camera's own skips by reason.
	NoRecorder, Starting, InFlight int
	CameraSkip                     map[string]int
	// Duplicates counts extra copies of frames; OutOfOrder frames whose
	// number is below one before them; NonMonotonic samples whose decode
	// time does not grow.
	Duplicates, OutOfOrder, NonMonotonic int
	// Phantom counts frames in the recording the camera never sent;
	// Unknown frame numbers not in the send log; Foreign frames of
	// another camera; Unstamped samples without a stamp.
	Phantom, Unknown, Foreign, Unstamped int
	// UnknownFrames describes the first unknown frames (sample, number,
	// stamp time).
	UnknownFrames []string
	// MaxSkew is the largest distance between a frame's time in the file
	// and its camera time, both from the first frame; TimingErrors counts
	// frames beyond Options.MaxSkew.
	MaxSkew      time.Duration
	TimingErrors int
	// Problems says in words why Pass is false.
	Problems []string
	Pass     bool
}

type fate struct {
	sent bool
	why  string
	at   time.Time // machine clock
	idr  bool
}

// Check compares the frames of a recording (ExtractFrames) with the send
// log of the camera (camsim.ReadSendLog).
func Check(frames []Frame, log []camsim.SendLogEntry, o Options) (*Report, error) {
	if o.From.IsZero() || !o.To.After(o.From) {
		return nil, fmt.Errorf("check: window %v..%v: want From before To", o.From, o.To)
	}
	if o.StartGrace == 0 {
		o.StartGrace = 5 * time.Second
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = 100 * time.Millisecond
	}
	fps, gop := 0, 0
	fates := map[uint64]fate{}
	type readers struct {
		at time.Time
		n  int
	}
	var rd []readers
	var idrs []time.Time // sent IDR frames, in order
	for _, e := range log {
		if e.Cam != o.Camera {
			return nil, fmt.Errorf("check: the send log is of camera %d, not %d", e.Cam, o.Camera)
		}
		switch e.Ev {
		case camsim.EvStart:
			fps, gop = e.FPS, e.GOP
		case camsim.EvReaders:
			rd = append(rd, readers{time.Unix(0, e.T0-e.Skew), e.N})
		}
		if !e.IsRange() {
			continue
		}
		if gop == 0 {
			return nil, errors.New("check: the send log has a frame range before its first start event")
		}
		for n := e.First; n <= e.Last; n++ {
			f := fate{sent: e.Ev == camsim.EvSent, why: e.Why, at: e.FrameTime(n).Add(-time.Duration(e.Skew))}
			f.idr = e.IDR != nil && n >= *e.IDR && (n-*e.IDR)%uint64(gop) == 0
			if f.idr {
				idrs = append(idrs, f.at)
			}
			fates[n] = f
		}
	}
	if fps == 0 {
		return nil, errors.New("check: the send log has no start event")
	}

	// Excuse windows after each start of a recorder.
	var starting []Interval
	starts := append([]time.Time(nil), o.Starts...)
	for _, d := range o.Down {
		starts = append(starts, d.End)
	}
	for _, s := range starts {
		connected := time.Time{}
		n := 0
		for _, r := range rd {
			if !r.at.After(s) {
				n = r.n
				continue
			}
			if n > 0 {
				break
			}
			n = r.n
			if n > 0 {
				connected = r.at
				break
			}
		}
		if n > 0 && connected.IsZero() {
			connected = s
		}
		end := s.Add(o.StartGrace)
		if !connected.IsZero() {
			i := sort.Search(len(idrs), func(i int) bool { return !idrs[i].Before(connected) })
			if i < len(idrs) && idrs[i].Before(end) {
				end = idrs[i]
			}
		}
		starting = append(starting, Interval{s, end})
	}

	r := &Report{Stream: o.Stream, CameraSkip: map[string]int{}}
	present := map[uint64]int{}
	var first *Frame
	var maxNum uint64
	seen := false
	var lastDTS time.Duration
	for i := range frames {
		f := &frames[i]
		if i > 0 && f.DTS <= lastDTS {
			r.NonMonotonic++
		}
		lastDTS = f.DTS
		if !f.Stamped {
			r.Unstamped++
			continue
		}
		if int(f.Stamp.Camera) != o.Camera {
			r.Foreign++
			continue
		}
		num := f.Stamp.Frame
		present[num]++
		if present[num] > 1 {
			r.Duplicates++
			continue
		}
		if seen && num < maxNum {
			r.OutOfOrder++
		}
		if !seen || num > maxNum {
			maxNum = num
		}
		seen = true
		ft, ok := fates[num]
		if !ok {
			if t := f.Stamp.Time; !t.Before(o.From) && t.Before(o.To) {
				r.Unknown++
				if len(r.UnknownFrames) < 10 {
					r.UnknownFrames = append(r.UnknownFrames, fmt.Sprintf("sample %d: frame %d at %s (dts %v)", i, num, t.UTC().Format("15:04:05.000"), f.DTS))
				}
			}
			continue
		}
		if !ft.sent {
			r.Phantom++
		}
		if first == nil {
			first = f
		} else {
			// Both clocks from the first frame: the file's and the camera's.
			fa := fates[first.Stamp.Frame].at
			skew := (f.DTS - first.DTS) - ft.at.Sub(fa)
			if skew < 0 {
				skew = -skew
			}
			r.MaxSkew = max(r.MaxSkew, skew)
			if skew > o.MaxSkew {
				r.TimingErrors++
			}
		}
	}

	nums := make([]uint64, 0, len(fates))
	for n, f := range fates {
		if !f.at.Before(o.From) && f.at.Before(o.To) {
			nums = append(nums, n)
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	in := func(t time.Time, ivs []Interval) bool {
		for _, iv := range ivs {
			if iv.contains(t) {
				return true
			}
		}
		return false
	}
	for _, n := range nums {
		f := fates[n]
		r.Generated++
		if f.sent {
			r.Sent++
		}
		if present[n] > 0 {
			r.Present++
			continue
		}
		switch {
		case f.why == camsim.SkipBehind || f.why == camsim.SkipPaused || f.why == camsim.SkipUnreachable:
			r.CameraSkip[f.why]++
		case in(f.at, o.Down):
			r.NoRecorder++
		case in(f.at, o.InFlight):
			r.InFlight++
		case in(f.at, starting):
			r.Starting++
		default:
			// A frame nobody took (no reader, or the stream closing under
			// it) while a recorder was alive is the recorder's loss.
			r.Lost++
			if k := len(r.LostRanges) - 1; k >= 0 && r.LostRanges[k].Last+1 == n {
				r.LostRanges[k].Last, r.LostRanges[k].End = n, f.at
			} else {
				r.LostRanges = append(r.LostRanges, Range{n, n, f.at, f.at})
			}
		}
	}
	r.SecondsLost = float64(r.Lost) / float64(fps)

	add := func(n int, what string) {
		if n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.Lost, "frames lost")
	add(r.Duplicates, "duplicate frames")
	add(r.OutOfOrder, "frames out of order")
	add(r.NonMonotonic, "samples with non-increasing decode time")
	add(r.Phantom, "frames recorded that the camera never sent")
	add(r.Unknown, "frames with numbers not in the send log")
	add(r.Foreign, "frames of another camera")
	add(r.Unstamped, "samples without a stamp")
	add(r.TimingErrors, fmt.Sprintf("frames more than %v off their camera time", o.MaxSkew))
	if r.Generated == 0 {
		r.Problems = append(r.Problems, "no frame of the send log in the window")
	}
	r.Pass = len(r.Problems) == 0
	return r, nil
}

// WriteTable writes one line per report.
func WriteTable(w io.Writer, rs []*Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream\tgenerated\tsent\tpresent\tlost\tlost s\tno recorder\tin flight\tstarting\tcamera skip\tdup\torder\tmax skew\tpass\t")
	for _, r := range rs {
		skips := 0
		for _, n := range r.CameraSkip {
			skips += n
		}
		pass := "PASS"
		if !r.Pass {
			pass = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%s\t\n", r.Stream, r.Generated, r.Sent, r.Present,
			r.Lost, r.SecondsLost, r.NoRecorder, r.InFlight, r.Starting, skips, r.Duplicates, r.OutOfOrder+r.NonMonotonic,
			r.MaxSkew.Round(time.Millisecond), pass)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if len(r.Problems) > 0 {
			fmt.Fprintf(w, "%s: %s\n", r.Stream, strings.Join(r.Problems, ", "))
		}
		for _, u := range r.UnknownFrames {
			fmt.Fprintf(w, "%s: not in the send log: %s\n", r.Stream, u)
		}
		for _, lr := range r.LostRanges {
			fmt.Fprintf(w, "%s: lost frames %d..%d (%s .. %s)\n", r.Stream, lr.First, lr.Last,
				lr.Start.UTC().Format("15:04:05.000"), lr.End.UTC().Format("15:04:05.000"))
		}
	}
	return nil
}
