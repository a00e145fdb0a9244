package camsim

import (
	"fmt"
	"strconv"
	"strings"
)

// Outages a camera can be put in from outside its process (`camsim
// -control FILE`): the lines of the file name a camera and its state.
const (
	// CtlUp: running, reachable, sending (the state of a camera the file
	// does not name).
	CtlUp = "up"
	// CtlPause: sessions stay open, nothing is sent (Pause).
	CtlPause = "pause"
	// CtlStop: the stream ends, DESCRIBE answers 404 (Stop); Start again
	// when the camera is up.
	CtlStop = "stop"
	// CtlUnreachable: every connection to the camera closes
	// (SetUnreachable); the camera keeps running.
	CtlUnreachable = "unreachable"
)

// ParseControl reads a control file: one camera a line, "N STATE", STATE
// one of up, pause, stop, unreachable; blank lines and lines starting
// with # are ignored. A camera named twice takes its last line.
func ParseControl(text string, cameras int) (map[int]string, error) {
	out := map[int]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("camsim: control line %d %q: want \"CAMERA STATE\"", i+1, line)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 0 || n >= cameras {
			return nil, fmt.Errorf("camsim: control line %d: camera %q: want 0..%d", i+1, f[0], cameras-1)
		}
		switch f[1] {
		case CtlUp, CtlPause, CtlStop, CtlUnreachable:
		default:
			return nil, fmt.Errorf("camsim: control line %d: state %q: want up, pause, stop or unreachable", i+1, f[1])
		}
		out[n] = f[1]
	}
	return out, nil
}

// ApplyControl puts every camera in the state the control text gives it
// (up when it names none). The text is parsed whole first: a bad one
// changes nothing.
func (s *Server) ApplyControl(text string) error {
	want, err := ParseControl(text, len(s.cameras))
	if err != nil {
		return err
	}
	for _, c := range s.cameras {
		st := want[c.n]
		if st == "" {
			st = CtlUp
		}
		if err := c.setControl(st); err != nil {
			return err
		}
	}
	return nil
}

func (c *Camera) setControl(st string) error {
	if st == CtlStop {
		c.Stop()
		return nil
	}
	if err := c.Start(); err != nil { // a stopped camera comes back
		return err
	}
	if c.Unreachable() != (st == CtlUnreachable) {
		c.SetUnreachable(st == CtlUnreachable)
	}
	if st == CtlPause {
		c.Pause()
	} else {
		c.Resume()
	}
	return nil
}
