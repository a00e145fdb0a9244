package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine"
)

// TestCtlStreamsListHealth is the first done-when: a node with a
// healthy camera, a refused port, a 404 path and a camera whose
// credentials it lacks; `ctl streams list` shows four different states
// within seconds, with why, and `ctl streams get` the recorder.
func TestCtlStreamsListHealth(t *testing.T) {
	const admin = "ctl-health-admin-token"
	start := func(cfg camsim.Config) *camsim.Server {
		cfg.Listen, cfg.Width, cfg.Height, cfg.Bitrate, cfg.GOP = "127.0.0.1:0", 320, 240, 500_000, 25
		s, err := camsim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	open := start(camsim.Config{Cameras: 1})
	locked := start(camsim.Config{Cameras: 1, User: "admin", Pass: "the-camera-password"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	cfg := engine.Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: admin}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	node, err := engine.OpenNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	server := "http://" + node.Addr()
	for i := 0; ; i++ {
		if resp, err := http.Get(server + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 200 {
			t.Fatal("node not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	lockedURL := strings.Replace(locked.URL(0), "admin:the-camera-password@", "", 1)
	for _, add := range [][]string{
		{"healthy", "--url", open.URL(0)},
		{"refused", "--url", "rtsp://" + refused + "/cam/0"},
		{"wrongpath", "--url", strings.Replace(open.URL(0), "/cam/0", "/cam/99", 1)},
		{"nocreds", "--url", lockedURL},
	} {
		if code, _, stderr := ctlCall(t, server, admin, append([]string{"streams", "add"}, add...)...); code != 0 {
			t.Fatalf("streams add %v: exit %d %s", add, code, stderr)
		}
	}
	created := time.Now()
	want := map[string]string{"healthy": "recording", "refused": "camera_unreachable", "wrongpath": "camera_not_found", "nocreds": "camera_auth_failed"}
	var out string
	for {
		code, stdout, stderr := ctlCall(t, server, admin, "streams", "list")
		if code != 0 {
			t.Fatalf("streams list: exit %d %s", code, stderr)
		}
		out = stdout
		ok := true
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && want[f[0]] != "" && f[1] != want[f[0]] {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Since(created) > 30*time.Second { // 10 s idle; the machine is shared
			t.Fatalf("states after %s:\n%s", time.Since(created), out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("four states after %s:\n%s", time.Since(created).Round(time.Millisecond), out)
	for _, s := range []string{"why:", "refused: describe: dial tcp", "connection refused", "wrongpath: the camera has no stream at this path", "nocreds: the camera refuses the credentials", "n1:home"} {
		if !strings.Contains(out, s) {
			t.Errorf("streams list lacks %q", s)
		}
	}
	if strings.Contains(out, "the-camera-password") {
		t.Error("streams list prints the camera password")
	}
	code, stdout, _ := ctlCall(t, server, admin, "streams", "get", "healthy")
	if code != 0 || !strings.Contains(stdout, "state:              recording") || !strings.Contains(stdout, "recorder:           n1 home recording since") {
		t.Errorf("streams get healthy: exit %d\n%s", code, stdout)
	}
}
