package camsim

import "testing"

// TestControl: the control text puts each camera in its state (unnamed
// ones up) and back; a bad text is refused whole and changes nothing.
func TestControl(t *testing.T) {
	cfg := testConfig()
	cfg.Cameras = 3
	s := startServer(t, cfg)
	if err := s.ApplyControl("# outages\n0 pause\n1 stop\n\n2 unreachable\n"); err != nil {
		t.Fatal(err)
	}
	if st := s.Camera(0).State(); st != Paused {
		t.Errorf("camera 0 %v, want paused", st)
	}
	if st := s.Camera(1).State(); st != Stopped {
		t.Errorf("camera 1 %v, want stopped", st)
	}
	if !s.Camera(2).Unreachable() || s.Camera(2).State() != Running {
		t.Errorf("camera 2 %v, unreachable %v: want running and unreachable", s.Camera(2).State(), s.Camera(2).Unreachable())
	}
	for _, bad := range []string{"0", "3 up", "-1 up", "x up", "0 sleep", "0 up extra"} {
		if err := s.ApplyControl("1 up\n" + bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s.Camera(1).State() != Stopped {
		t.Error("a refused text changed a camera")
	}
	if err := s.ApplyControl(""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if c := s.Camera(i); c.State() != Running || c.Unreachable() {
			t.Errorf("camera %d %v, unreachable %v after an empty text: want up", i, c.State(), c.Unreachable())
		}
	}
}
