package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// understudyBinary builds the real binary once per test run: the end-to-end
// tests drive it as an operator would, as separate processes.
func understudyBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "understudy-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "understudy")
		out, err := exec.Command("go", "build", "-tags", "pebblegozstd", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type segmentsJSON struct {
	Segments []struct {
		Start, End time.Time
		Bytes      int64
		Path       string
		Checksum   string
		Class      string
		Origin     string
	}
	Coverage []struct{ Start, End time.Time }
	Gaps     []struct{ Start, End time.Time }
}

func segmentsOf(t *testing.T, bin, dir, stream string) segmentsJSON {
	t.Helper()
	out, err := exec.Command(bin, "segments", "--data-dir", dir, "--stream", stream, "--json").Output()
	if err != nil {
		t.Fatalf("segments: %v", err)
	}
	var s segmentsJSON
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("segments --json: %v\n%s", err, out)
	}
	return s
}

func ffprobeDuration(t *testing.T, path string) time.Duration {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	secs, err := strconv.ParseFloat(lines[len(lines)-1], 64)
	if err != nil || len(lines) != 1 {
		t.Fatalf("ffprobe %s reported errors or no duration:\n%s", path, out)
	}
	return time.Duration(secs * float64(time.Second))
}

func startCamsim(t *testing.T, cfg camsim.Config) *camsim.Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	srv, err := camsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestRecordCommand is done-when 1 of the foundation: a simulated 4 Mbit/s
// camera recorded for 15 s by `understudy record` gives segments that
// ffprobe decodes without a word, at least 14 s of coverage, and segment
// durations that add up to the recorded wall time.
func TestRecordCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s recording")
	}
	bin := understudyBinary(t)
	// Recording can only start at a keyframe: GOP 12 (~0.5 s) keeps the
	// wait for the first one from eating the 1 s of slack.
	srv := startCamsim(t, camsim.Config{Cameras: 1, Bitrate: 4_000_000, FPS: 25, GOP: 12, Audio: true})
	dir := t.TempDir()
	cmd := exec.Command(bin, "record", "--url", srv.URL(0), "--stream", "cam0", "--data-dir", dir,
		"--duration", "15s", "--segment-duration", "4s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	s := segmentsOf(t, bin, dir, "cam0")
	if len(s.Segments) < 3 {
		t.Fatalf("%d segments from 15 s in 4 s segments:\n%s", len(s.Segments), out)
	}
	var covered, probed time.Duration
	for _, c := range s.Coverage {
		covered += c.End.Sub(c.Start)
	}
	for _, sg := range s.Segments {
		d := ffprobeDuration(t, filepath.Join(dir, sg.Path))
		indexed := sg.End.Sub(sg.Start)
		if diff := (d - indexed).Abs(); diff > 100*time.Millisecond {
			t.Errorf("%s: ffprobe says %s, the index %s", sg.Path, d, indexed)
		}
		probed += d
	}
	span := s.Segments[len(s.Segments)-1].End.Sub(s.Segments[0].Start)
	// An overloaded machine can make the simulated camera skip frames:
	// the source's loss, not the recorder's.
	sourceLoss := time.Duration(srv.Camera(0).Stats().Dropped) * 40 * time.Millisecond
	t.Logf("15 s run: %d segments, coverage %s, ffprobe durations sum %s, span %s, gaps %d, camera skipped %s",
		len(s.Segments), covered, probed, span, len(s.Gaps), sourceLoss)
	if covered < 14*time.Second-sourceLoss {
		t.Errorf("coverage %s, want ≥ 14 s", covered)
	}
	if sourceLoss == 0 && len(s.Gaps) != 0 {
		t.Errorf("gaps inside the recording: %v", s.Gaps)
	}
	if diff := (probed - span).Abs(); diff > time.Second {
		t.Errorf("segment durations add up to %s, the recorded wall time is %s", probed, span)
	}
}

// TestRecordSurvivesKill9 is done-when 2: the recorder killed with SIGKILL
// at a random moment and started again leaves a data directory that fsck
// finds consistent, and loses at most the part in flight (~1 s) before
// the kill.
func TestRecordSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 runs")
	}
	bin := understudyBinary(t)
	srv := startCamsim(t, camsim.Config{Cameras: 1, Bitrate: 2_000_000, GOP: 25})
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	dir := t.TempDir()

	const runs = 3
	var worst time.Duration
	for i := 0; i < runs; i++ {
		cmd := exec.Command(bin, "record", "--url", srv.URL(0), "--stream", "cam0", "--data-dir", dir,
			"--segment-duration", "3s", "--quiet")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wait := 3*time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		time.Sleep(wait)
		killed := time.Now()
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		// Restart: recovery runs on open, then recording goes on.
		out, err := exec.Command(bin, "record", "--url", srv.URL(0), "--stream", "cam0", "--data-dir", dir,
			"--duration", "2s", "--quiet").CombinedOutput()
		if err != nil {
			t.Fatalf("restart after kill -9: %v\n%s", err, out)
		}
		if out, err := exec.Command(bin, "fsck", "--data-dir", dir).CombinedOutput(); err != nil {
			t.Fatalf("fsck after kill -9 at %s: %v\n%s", wait, err, out)
		}

		// The loss: from the end of the coverage before the kill to the kill.
		s := segmentsOf(t, bin, dir, "cam0")
		var lastBefore time.Time
		for _, c := range s.Coverage {
			if c.Start.Before(killed) && c.End.After(lastBefore) {
				lastBefore = c.End
			}
		}
		if lastBefore.IsZero() {
			t.Fatalf("run %d: nothing recorded before the kill after %s", i, wait)
		}
		loss := killed.Sub(lastBefore)
		t.Logf("run %d: killed after %s, lost %s before the kill", i, wait.Round(time.Millisecond), loss.Round(time.Millisecond))
		worst = max(worst, loss)
	}
	// One part is ~1 s; frames also spend a few ms in flight.
	if worst > 1500*time.Millisecond {
		t.Errorf("worst loss before a kill -9: %s, want at most one part (~1 s)", worst)
	}
}

// TestRecordNeverEchoesSecrets: `record` given a camera URL it cannot
// parse (a password with an unescaped '?', no scheme) says what is wrong,
// exits 2 and shows no part of the password; given a camera that takes its
// password in the query, it records with it and prints it masked. ctl's
// --server errors do not echo the address either.
func TestRecordNeverEchoesSecrets(t *testing.T) {
	bin := understudyBinary(t)
	const secret = "QueryPw_Leak"
	srv := startCamsim(t, camsim.Config{Cameras: 1, Bitrate: 500_000, Width: 320, Height: 240, GOP: 25,
		Query: "user=admin&password=" + secret})
	host := strings.TrimPrefix(strings.SplitN(srv.URL(0), "/cam/", 2)[0], "rtsp://")

	for _, tt := range []struct {
		name      string
		env, flag string
		secrets   []string
		want      string
	}{
		{"unescaped ? in the password, from the environment", "rtsp://admin:Zq?ss2@" + host + "/cam/0", "", []string{"Zq", "ss2"}, "bad port"},
		{"unescaped ? in the password, from the flag", "", "rtsp://admin:Zq?ss2@" + host + "/cam/0", []string{"Zq", "ss2"}, "bad port"},
		{"no scheme", "", "admin:NoSchemePw@" + host + "/cam/0", []string{"NoSchemePw", "admin"}, "no scheme"},
		{"unescaped / in the password", "", "rtsp://admin:4321/Sl@" + host + "/cam/0", []string{"4321", "Sl@"}, "'@' after the host"},
		{"bad percent-escape", "", "rtsp://admin:50%Pct@" + host + "/cam/0", []string{"50%Pct", "Pct"}, "percent-escape"},
	} {
		dir := t.TempDir()
		args := []string{"record", "--stream", "x", "--data-dir", dir, "--duration", "2s"}
		if tt.flag != "" {
			args = append(args, "--url", tt.flag)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "UNDERSTUDY_CAMERA_URL="+tt.env)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%s: exit %d (%v), want 2:\n%s", tt.name, code, err, out)
		}
		for _, s := range tt.secrets {
			if strings.Contains(string(out), s) {
				t.Errorf("%s: output leaks %q:\n%s", tt.name, s, out)
			}
		}
		if !strings.Contains(string(out), tt.want) {
			t.Errorf("%s: output does not say %q:\n%s", tt.name, tt.want, out)
		}
	}

	// The camera takes only the right query: recording it means the
	// recorder dialed the real URL; what it printed has the password masked.
	dir := t.TempDir()
	cmd := exec.Command(bin, "record", "--stream", "q", "--data-dir", dir, "--duration", "3s")
	cmd.Env = append(os.Environ(), "UNDERSTUDY_CAMERA_URL="+srv.URL(0))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	if strings.Contains(string(out), secret) || !strings.Contains(string(out), "user=admin&password=xxxxx") {
		t.Errorf("record shows the query password, or not the masked URL:\n%s", out)
	}
	if srv.Camera(0).Stats().FramesSent == 0 || !strings.Contains(string(out), "camera connected") {
		t.Errorf("nothing recorded from the camera that wants the query password:\n%s", out)
	}
	// A wrong query password: refused, reconnect warnings masked.
	wrong := strings.Replace(srv.URL(0), secret, "Wrong_Leak", 1)
	out, _ = exec.Command(bin, "record", "--url", wrong, "--stream", "w", "--data-dir", t.TempDir(), "--duration", "1500ms").CombinedOutput()
	if strings.Contains(string(out), "Wrong_Leak") || !strings.Contains(string(out), "camera connection ended") {
		t.Errorf("reconnect warnings leak the password or are missing:\n%s", out)
	}

	for _, server := range []string{"http://u:SrvPw@127.0.0.1:1", "http://u:Srv?Pw2@127.0.0.1:1", "ftp://u:SrvPw@h"} {
		cmd := exec.Command(bin, "ctl", "--server", server, "nodes")
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("ctl --server %s: exit %d, want 2:\n%s", server, code, out)
		}
		if strings.Contains(string(out), "SrvPw") || strings.Contains(string(out), "Srv") {
			t.Errorf("ctl --server error echoes the password:\n%s", out)
		}
	}
}
