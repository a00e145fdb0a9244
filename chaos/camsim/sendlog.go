package camsim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// The send log of a camera says, frame number by frame number, what the
// camera did with every frame it generated: sent it to its playing
// sessions, or skipped it and why. A frame checker compares it with the
// frames a recorder kept, so that a camera's own skip is never charged to
// the recorder and a recorder's loss never hides behind the camera.
//
// It is a file of JSON lines, one per camera, appended to (SendLogPath).
// Consecutive frames with the same fate are one line, at most a second of
// frames long, so the file lags what was sent by at most a second and a
// killed camera process leaves at most its last line torn (ReadSendLog
// ignores a torn last line).

// Send log events (SendLogEntry.Ev).
const (
	// EvStart: the camera started a stream (FPS, GOP, T0).
	EvStart = "start"
	// EvSent: frames First..Last were sent to every playing session.
	EvSent = "sent"
	// EvSkip: frames First..Last were generated but not sent (Why).
	EvSkip = "skip"
	// EvReaders: the number of playing sessions became N at T0.
	EvReaders = "readers"
	// EvStop: the stream ended at T0 (no frames until the next start).
	EvStop = "stop"
)

// Reasons of a skip (SendLogEntry.Why).
const (
	// SkipBehind: the camera fell more than a second behind (an overloaded
	// machine) and dropped the frames instead of sending a burst: the
	// camera's loss.
	SkipBehind = "behind"
	// SkipPaused: the camera was paused (Camera.Pause): a source outage.
	SkipPaused = "paused"
	// SkipNoReader: no session was playing; nobody could have recorded
	// the frames.
	SkipNoReader = "no-reader"
	// SkipClosed: the stream closed while the frame was being written.
	SkipClosed = "closed"
	// SkipUnreachable: the camera was unreachable (SetUnreachable): no
	// recorder could reach it, a source outage.
	SkipUnreachable = "unreachable"
)

// SendLogEntry is one line of a send log. Times are the camera's wall
// clock (the time in the frames' stamps), in nanoseconds since 1970.
type SendLogEntry struct {
	Ev  string `json:"ev"`
	Cam int    `json:"cam"`
	// First and Last are the frame numbers of a sent or skip range.
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last,omitempty"`
	// T0 is the time of frame First (of the event for other entries);
	// T1 the time of frame Last.
	T0 int64 `json:"t0"`
	T1 int64 `json:"t1,omitempty"`
	// IDR is the number of the first IDR frame of a sent range, when it
	// has one; further IDR frames of the range follow every GOP frames.
	IDR *uint64 `json:"idr,omitempty"`
	// Why is the reason of a skip.
	Why string `json:"why,omitempty"`
	// N is the number of playing sessions of a readers event.
	N int `json:"n,omitempty"`
	// Skew is the camera's clock skew (SetClockSkew) in nanoseconds
	// during a range: subtract it from a time to get the machine's clock.
	Skew int64 `json:"skew,omitempty"`
	// FPS and GOP of a start event.
	FPS int `json:"fps,omitempty"`
	GOP int `json:"gop,omitempty"`
}

// IsRange reports whether e covers frames (sent or skip).
func (e *SendLogEntry) IsRange() bool { return e.Ev == EvSent || e.Ev == EvSkip }

// FrameTime returns the camera time of frame n of a range entry
// (interpolated: frames of a range are evenly spaced).
func (e *SendLogEntry) FrameTime(n uint64) time.Time {
	if e.Last == e.First {
		return time.Unix(0, e.T0)
	}
	d := float64(e.T1-e.T0) * float64(n-e.First) / float64(e.Last-e.First)
	return time.Unix(0, e.T0+int64(d))
}

// SendLogPath is the send log of camera n in directory dir.
func SendLogPath(dir string, n int) string {
	return filepath.Join(dir, "cam-"+strconv.Itoa(n)+".sendlog")
}

// ReadSendLogFile reads the send log at path (see ReadSendLog).
func ReadSendLogFile(path string) ([]SendLogEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := ReadSendLog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

// maxSendLogLine bounds one line of a send log.
const maxSendLogLine = 4096

// ReadSendLog reads a send log and checks it: known events, ranges with
// First <= Last and T0 <= T1, and frame numbers that only grow from range
// to range. A last line without its newline (a camera killed while
// writing it) is ignored; any other bad line is an error naming it.
func ReadSendLog(r io.Reader) ([]SendLogEntry, error) {
	br := bufio.NewReaderSize(r, maxSendLogLine)
	var es []SendLogEntry
	var next uint64 // lowest frame number the next range may start at
	seen := false
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("send log line %d: longer than %d bytes", line, maxSendLogLine)
		}
		if err == io.EOF {
			return es, nil // a torn (or no) last line
		}
		if err != nil {
			return nil, err
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var e SendLogEntry
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("send log line %d: %w", line, err)
		}
		switch e.Ev {
		case EvSent, EvSkip:
			if e.First > e.Last || e.T1 < e.T0 {
				return nil, fmt.Errorf("send log line %d: range %d..%d at %d..%d runs backwards", line, e.First, e.Last, e.T0, e.T1)
			}
			if seen && e.First < next {
				return nil, fmt.Errorf("send log line %d: frame %d after frame %d: frame numbers go back", line, e.First, next-1)
			}
			if e.IDR != nil && (e.Ev != EvSent || *e.IDR < e.First || *e.IDR > e.Last) {
				return nil, fmt.Errorf("send log line %d: IDR frame %d outside the sent range %d..%d", line, *e.IDR, e.First, e.Last)
			}
			if e.Ev == EvSkip && e.Why == "" {
				return nil, fmt.Errorf("send log line %d: skip without a reason", line)
			}
			next, seen = e.Last+1, true
		case EvStart:
			if e.FPS < 1 || e.GOP < 1 {
				return nil, fmt.Errorf("send log line %d: start with fps %d, gop %d", line, e.FPS, e.GOP)
			}
		case EvReaders, EvStop:
		default:
			return nil, fmt.Errorf("send log line %d: unknown event %q", line, e.Ev)
		}
		es = append(es, e)
	}
}

// sendLog writes one camera's send log. A nil *sendLog writes nothing.
type sendLog struct {
	mu      sync.Mutex
	f       *os.File
	cam     int
	fps     uint64
	gop     uint64
	cur     SendLogEntry
	open    bool // cur holds a range not yet written
	log     *slog.Logger
	errSeen bool
}

// openSendLog opens (appending) the send log of camera n in dir and
// returns it with the next frame number: one past the last logged, so
// frame numbers stay unique across camera processes sharing the log.
func openSendLog(dir string, n, fps, gop int, log *slog.Logger) (*sendLog, uint64, error) {
	path := SendLogPath(dir, n)
	var next uint64
	if es, err := ReadSendLogFile(path); err == nil {
		for _, e := range es {
			if e.IsRange() {
				next = e.Last + 1
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("camsim: send log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("camsim: send log: %w", err)
	}
	// A torn last line of an earlier process must not glue onto ours.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if b, err := os.ReadFile(path); err == nil && b[len(b)-1] != '\n' {
			f.Write([]byte{'\n'})
		}
	}
	return &sendLog{f: f, cam: n, fps: uint64(fps), gop: uint64(gop), log: log}, next, nil
}

// frames logs frames first..last (times t0..t1) as sent (why "") or
// skipped; idr is the first IDR frame among them, if any.
func (l *sendLog) frames(first, last uint64, t0, t1 time.Time, skew time.Duration, why string, idr *uint64) {
	if l == nil {
		return
	}
	ev := EvSent
	if why != "" {
		ev = EvSkip
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.cur
	if l.open && c.Ev == ev && c.Why == why && c.Skew == int64(skew) && first == c.Last+1 && last-c.First < l.fps {
		c.Last, c.T1 = last, t1.UnixNano()
		if c.IDR == nil && idr != nil {
			v := *idr
			c.IDR = &v
		}
		return
	}
	l.flushLocked()
	*c = SendLogEntry{Ev: ev, Cam: l.cam, First: first, Last: last, T0: t0.UnixNano(), T1: t1.UnixNano(), Why: why, Skew: int64(skew)}
	if idr != nil {
		v := *idr
		c.IDR = &v
	}
	l.open = true
}

// event writes a start, readers or stop event after the open range.
func (l *sendLog) event(e SendLogEntry) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	e.Cam = l.cam
	l.write(&e)
}

func (l *sendLog) flushLocked() {
	if l.open {
		l.open = false
		l.write(&l.cur)
	}
}

func (l *sendLog) write(e *SendLogEntry) {
	b, err := json.Marshal(e)
	if err == nil {
		_, err = l.f.Write(append(b, '\n'))
	}
	if err != nil && !l.errSeen {
		l.errSeen = true
		l.log.Error("camsim: send log write failed; the log is incomplete", "camera", l.cam, "err", err)
	}
}

// close writes the open range and closes the file.
func (l *sendLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	l.f.Close()
}
