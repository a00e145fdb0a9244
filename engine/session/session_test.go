package session

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/pion/rtcp"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/internal/testkit"
	"github.com/understudy-nvr/understudy/segment"
)

// freeUDPPair finds an even/odd pair of free UDP ports, as RTP over UDP
// needs.
func freeUDPPair(t *testing.T) (string, string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if port%2 != 0 {
			port++
		}
		rtpC, err1 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		rtcpC, err2 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if rtpC != nil {
			rtpC.Close()
		}
		if rtcpC != nil {
			rtcpC.Close()
		}
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
		}
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// record runs a session until stop returns, then stops it and waits.
func record(t *testing.T, st *segment.Store, cfg Config, during func()) *Session {
	t.Helper()
	s, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	during()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("session did not stop within 15s of its context ending")
	}
	return s
}

func total(ivs []segment.Interval) time.Duration {
	var d time.Duration
	for _, iv := range ivs {
		d += iv.End.Sub(iv.Start)
	}
	return d
}

// TestSessionRecordsWithoutHoles: what a camera sends while the session runs
// is on disk, in contiguous segments that an independent decoder accepts.
func TestSessionRecordsWithoutHoles(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is needed (apt-get install ffmpeg)")
	}
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			cfg := camsim.Config{Cameras: 1, Audio: true}
			if transport == "udp" {
				cfg.UDPRTPAddress, cfg.UDPRTCPAddress = freeUDPPair(t)
			}
			srv := testkit.StartCameras(t, cfg)
			st := testkit.OpenStore(t)
			const run = 7 * time.Second
			s := record(t, st, Config{
				Stream: "cam0", URL: srv.URL(0), Transport: transport,
				SegmentDuration: 2 * time.Second,
			}, func() { time.Sleep(run) })

			segs, err := st.Segments("cam0", time.Time{}, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) < 2 {
				t.Fatalf("stats %+v; got %d segments in %s with 2s segments, want several", s.Stats(), len(segs), run)
			}
			from, to := segs[0].Start, segs[len(segs)-1].End
			cov, err := st.Coverage("cam0", from, to)
			if err != nil {
				t.Fatal(err)
			}
			// On an overloaded machine the simulated camera itself may skip
			// frames; that is the source's loss, not the recorder's. Up to
			// a GOP more goes while the recorder waits for a keyframe.
			sourceLoss := time.Duration(srv.Camera(0).Stats().Dropped) * 40 * time.Millisecond
			gaps, err := st.Gaps("cam0", from, to)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("coverage %s, gaps %v, camera skipped %s", total(cov), gaps, sourceLoss)
			// The first keyframe may take one GOP (2s) to arrive.
			if c := total(cov); c < run-3*time.Second-sourceLoss {
				t.Errorf("coverage %s of a %s run", c, run)
			}
			if sourceLoss == 0 && len(gaps) != 0 {
				t.Errorf("holes inside the recording: %v", gaps)
			}
			if g := total(gaps); g > 0 && g > sourceLoss+2*time.Second {
				t.Errorf("gaps of %s inside the recording, the camera skipped only %s", g, sourceLoss)
			}
			for _, sg := range segs {
				if msg := testkit.FFprobeErrors(t, filepath.Join(st.Dir(), sg.Path)); msg != "" {
					t.Errorf("ffprobe on %s: %s", sg.Path, msg)
				}
			}
			if stats := s.Stats(); stats.Frames == 0 || stats.WriteErrors != 0 {
				t.Errorf("stats %+v", stats)
			}
		})
	}
}

// TestSessionSourceOutage: a camera that goes away for a while is a source
// outage of about that long, and recording resumes by itself.
func TestSessionSourceOutage(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	st := testkit.OpenStore(t)
	const down = 4 * time.Second
	var stoppedAt, startedAt time.Time
	record(t, st, Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp", ReadTimeout: 2 * time.Second, BackoffMax: time.Second}, func() {
		time.Sleep(3 * time.Second)
		stoppedAt = time.Now()
		srv.Camera(0).Stop()
		time.Sleep(down)
		srv.Camera(0).Start()
		startedAt = time.Now()
		time.Sleep(4 * time.Second)
	})
	outages, err := st.SourceOutages("cam0", stoppedAt.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(outages) != 1 {
		t.Fatalf("want one source outage, got %v", outages)
	}
	got := outages[0].End.Sub(outages[0].Start)
	// The outage runs from the last frame to the first keyframe after the
	// camera is back (GOP 1s, reconnect backoff ≤ 1s).
	if got < down-time.Second || got > down+3*time.Second {
		t.Errorf("outage of %s for a camera down %s (%s .. %s)", got, down, stoppedAt.Format(time.StampMilli), startedAt.Format(time.StampMilli))
	}
	cov, err := st.Coverage("cam0", startedAt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if total(cov) < 2*time.Second {
		t.Errorf("recording did not resume after the camera came back: coverage %v", cov)
	}
}

// TestSessionNeverLogsCredentials: with right and with wrong credentials,
// nothing the session logs or emits contains the password.
func TestSessionNeverLogsCredentials(t *testing.T) {
	const user, pass = "admin", "s3cr3t-Pa55"
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, User: user, Pass: pass})
	u := srv.URL(0) // carries the credentials
	if !strings.Contains(u, pass) {
		t.Fatalf("camsim URL %q lacks the credentials", u)
	}
	wrong := strings.Replace(u, ":"+pass+"@", ":wrong-"+pass+"@", 1)

	for name, url := range map[string]string{"right": u, "wrong": wrong} {
		t.Run(name, func(t *testing.T) {
			var logs testkit.SyncBuffer
			var mu sync.Mutex
			var events []string
			st := testkit.OpenStore(t)
			s := record(t, st, Config{
				Stream: "cam0", URL: url, Transport: "tcp",
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				OnEvent: func(e Event) {
					mu.Lock()
					events = append(events, e.Message)
					mu.Unlock()
				},
			}, func() { time.Sleep(3 * time.Second) })
			mu.Lock()
			all := logs.String() + strings.Join(events, "\n") + s.Stats().LastError
			mu.Unlock()
			if strings.Contains(all, pass) {
				t.Fatalf("password leaked:\n%s", all)
			}
			if name == "right" && s.Stats().Frames == 0 {
				t.Errorf("nothing recorded with the right credentials; logs:\n%s", logs.String())
			}
			if name == "wrong" && s.Stats().Frames != 0 {
				t.Errorf("recorded with wrong credentials")
			}
		})
	}
}

func TestNewSessionRejectsBadConfig(t *testing.T) {
	st := testkit.OpenStore(t)
	for _, c := range []Config{
		{Stream: "../etc", URL: "rtsp://127.0.0.1/x"},
		{Stream: "", URL: "rtsp://127.0.0.1/x"},
		{Stream: "cam", URL: "://nope"},
		{Stream: "cam", URL: "rtsp://127.0.0.1/x", Transport: "carrier-pigeon"},
	} {
		if _, err := New(st, c); err == nil {
			t.Errorf("New(%+v) accepted a bad config", c)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://u:p@h:554/x": "rtsp://xxxxx@h:554/x",
		"rtsp://h/x":         "rtsp://h/x",
		"rtsp://u@h/x":       "rtsp://xxxxx@h/x",
	} {
		if got := catalog.RedactURL(in); got != want || strings.Contains(got, ":p@") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNTPTime(t *testing.T) {
	// 2026-01-01T00:00:00.5Z: seconds since 1900, and half of 2^32.
	want := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	v := uint64(want.Unix()+2208988800)<<32 | 1<<31
	if got := ntpTime(v); !got.Equal(want) {
		t.Fatalf("ntpTime = %s, want %s", got, want)
	}
	var sr senderReports
	if _, ok := sr.wall(1, 0, 90000); ok {
		t.Fatal("wall time before any sender report")
	}
	sr.observe(&rtcp.SenderReport{SSRC: 1, NTPTime: v, RTPTime: 100000})
	if got, _ := sr.wall(1, 100000+90000, 90000); !got.Equal(want.Add(time.Second)) {
		t.Errorf("one second after the report: %s", got)
	}
	if got, _ := sr.wall(1, 100000-45000, 90000); !got.Equal(want.Add(-500 * time.Millisecond)) {
		t.Errorf("half a second before the report: %s", got)
	}
	if _, ok := sr.wall(2, 1000, 90000); ok {
		t.Error("wall time for a source without a report")
	}
}

// TestSessionUsesCameraClock: frames are stamped with the wall-clock time
// the camera's sender reports carry, not with their arrival time.
func TestSessionUsesCameraClock(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	srv.Camera(0).SetClockSkew(3 * time.Second) // within what the session trusts
	st := testkit.OpenStore(t)
	record(t, st, Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp"}, func() { time.Sleep(4 * time.Second) })
	segs, err := st.Segments("cam0", time.Time{}, time.Now().Add(time.Hour))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	// The newest frame was taken "3 s in the future" by the camera's clock.
	if ahead := time.Until(segs[len(segs)-1].End); ahead < 2*time.Second || ahead > 4*time.Second {
		t.Errorf("recording ends %s after now, want about 3s (the camera's clock)", ahead)
	}
}

// TestSessionKeepsCredentialsFromRedirects: a camera (or whoever answers
// in its place) that redirects DESCRIBE to another host must not get the
// stream's credentials sent there: the session refuses to connect to the
// other host, and says why without the password.
func TestSessionKeepsCredentialsFromRedirects(t *testing.T) {
	const pass = "Redir-Secret-99"
	// The thief: counts connections.
	thief, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	var stolen atomic.Int32
	go func() {
		for {
			c, err := thief.Accept()
			if err != nil {
				return
			}
			stolen.Add(1)
			c.Close()
		}
	}()
	// The camera: answers every request with a redirect to the thief.
	cam, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	go func() {
		for {
			c, err := cam.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					req, err := readRTSPRequest(r)
					if err != nil {
						return
					}
					if strings.HasPrefix(req[""], "OPTIONS") {
						fmt.Fprintf(c, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nPublic: DESCRIBE, SETUP, PLAY\r\n\r\n", req["cseq"])
						continue
					}
					fmt.Fprintf(c, "RTSP/1.0 302 Moved\r\nCSeq: %s\r\nLocation: rtsp://%s/evil\r\n\r\n", req["cseq"], thief.Addr())
				}
			}()
		}
	}()
	var logs testkit.SyncBuffer
	st := testkit.OpenStore(t)
	s := record(t, st, Config{
		Stream: "cam0", URL: "rtsp://admin:" + pass + "@" + cam.Addr().String() + "/cam", Transport: "tcp",
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, func() { time.Sleep(1500 * time.Millisecond) })
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the session connected to the redirect target %d times", n)
	}
	last := s.Stats().LastError
	if !strings.Contains(last, "redirected") || strings.Contains(last+logs.String(), pass) {
		t.Errorf("last error %q; logs:\n%s", last, logs.String())
	}
}

// readRTSPRequest reads one RTSP request's headers (lower-cased keys).
func readRTSPRequest(r *bufio.Reader) (map[string]string, error) {
	h := map[string]string{}
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	h[""] = strings.TrimSpace(line)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return h, nil
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			h[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
}

// TestExplainRTSPError: a camera URL pointing at a server that does not
// speak RTSP (an HTTP port, say) is reported as such, with what the server
// said as text, not as a list of byte values.
func TestExplainRTSPError(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"describe: expected 'RTSP/1.0', got [72 84 84 80 47 49 46 49 32 52 48 48]", `describe: an HTTP server answered, not an RTSP one (it said "HTTP/1.1 400"; wrong port or scheme?)`},
		{"expected 'RTSP/1.0', got [83 83 72 45 50]", `the server does not speak RTSP (it said "SSH-2"; wrong port or scheme?)`},
		{"describe: EOF", "describe: EOF"},
		{"expected 'RTSP/1.0', got [999]", "expected 'RTSP/1.0', got [999]"},
	} {
		if got := explainRTSPError(c.in); got != c.want {
			t.Errorf("explainRTSPError(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSessionWaitsForKeyframe: joined mid-GOP of a long-GOP camera, the
// session says it is playing and waiting for a keyframe (what `record`
// prints), not that it is still connecting, and it is not yet connected.
func TestSessionWaitsForKeyframe(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, FPS: 25, GOP: 250}) // an IDR every 10 s
	time.Sleep(time.Second)                                                      // join a second into the GOP
	s, err := New(testkit.OpenStore(t), Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var st Stats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st = s.Stats(); st.Playing {
			break
		}
	}
	if !st.Playing || st.Connected || st.Frames != 0 {
		t.Errorf("a second into a 10 s GOP: %+v, want playing, not connected, no frames", st)
	}
}

// TestSessionCountsStalls: a camera that stays connected but sends no
// video for 1.5 s is too short a hole to end the segment (the last frame
// is held over it), but it is counted and logged, not silent; 0.4 s is
// within what cameras do and is not counted.
func TestSessionCountsStalls(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	var logs testkit.SyncBuffer
	s := record(t, testkit.OpenStore(t), Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, func() {
		time.Sleep(2 * time.Second)
		srv.Camera(0).Pause()
		time.Sleep(400 * time.Millisecond)
		srv.Camera(0).Resume()
		time.Sleep(2 * time.Second)
		srv.Camera(0).Pause()
		time.Sleep(1500 * time.Millisecond)
		srv.Camera(0).Resume()
		time.Sleep(2 * time.Second)
	})
	st := s.Stats()
	if st.Stalls != 1 || st.Reconnects != 0 {
		t.Errorf("pauses of 0.4 s and 1.5 s on one connection: %d stalls, %d reconnects; want 1 and 0", st.Stalls, st.Reconnects)
	}
	if !strings.Contains(logs.String(), "camera sent no video while connected") {
		t.Errorf("the stall was not logged:\n%s", logs.String())
	}
}

// TestSessionRetryLogsStayQuiet: a camera that stays unreachable is retried
// every couple of seconds for as long as it is gone; the log warns of the
// first three failures, not of every retry (the rest are debug lines).
func TestSessionRetryLogsStayQuiet(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // connection refused from now on
	var logs testkit.SyncBuffer
	s := record(t, testkit.OpenStore(t), Config{Stream: "cam0", URL: "rtsp://" + addr + "/x", Transport: "tcp",
		BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, func() {
		time.Sleep(time.Second)
	})
	var warns, debugs int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, "level=WARN") && strings.Contains(line, "camera"):
			warns++
		case strings.Contains(line, "level=DEBUG") && strings.Contains(line, "camera connection ended"):
			debugs++
		}
	}
	if r := s.Stats().Reconnects; r < 20 || warns != 3 || debugs < int(r)-3 {
		t.Errorf("%d retries: %d warnings, %d debug lines; want 3 warnings and the rest debug", r, warns, debugs)
	}
}

// TestSessionSilenceIsSourceOutage: a camera that stays connected but
// sends nothing for 3 s (longer than the writer holds a frame over: the
// segment ends) with no RTP packet lost is a source outage over the hole,
// recorded without a reconnect: the timeline calls it SOURCE, not SYSTEM.
func TestSessionSilenceIsSourceOutage(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25})
	st := testkit.OpenStore(t)
	var pausedAt, resumedAt time.Time
	s := record(t, st, Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp", ReadTimeout: 10 * time.Second}, func() {
		time.Sleep(2 * time.Second)
		pausedAt = time.Now()
		srv.Camera(0).Pause()
		time.Sleep(3 * time.Second)
		srv.Camera(0).Resume()
		resumedAt = time.Now()
		time.Sleep(2 * time.Second)
	})
	if r := s.Stats().Reconnects; r != 0 {
		t.Errorf("%d reconnects: the camera stayed connected", r)
	}
	outages, err := st.SourceOutages("cam0", pausedAt.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(outages) != 1 {
		t.Fatalf("a 3 s silence of a connected camera: outages %v, want one", outages)
	}
	o := outages[0]
	if o.Start.After(pausedAt.Add(100*time.Millisecond)) || o.Start.Before(pausedAt.Add(-200*time.Millisecond)) ||
		o.End.Before(resumedAt.Add(-100*time.Millisecond)) || o.End.After(resumedAt.Add(300*time.Millisecond)) {
		t.Errorf("outage %v..%v for a pause %v..%v", o.Start.Format(time.StampMilli), o.End.Format(time.StampMilli),
			pausedAt.Format(time.StampMilli), resumedAt.Format(time.StampMilli))
	}
}

// TestSessionBacklogWhileDiskStalls: while the disk stalls, the frames the
// session receives wait in its queue, and Stats.Backlog says from when the
// recording is still to be written (backfill leaves that time to the
// session instead of copying a peer's segments over it); once the disk is
// back and the queue drained, there is no backlog.
func TestSessionBacklogWhileDiskStalls(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1})
	disk := &testkit.StallDisk{}
	st, err := segment.Open(segment.Options{Dir: t.TempDir(), FS: errorfs.Wrap(vfs.Default, disk)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(st, Config{Stream: "cam0", URL: srv.URL(0), SegmentDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		disk.Resume()
		cancel()
		<-done
		st.Close()
	})
	waitUntil := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > timeout {
				t.Fatalf("timed out after %v waiting for %s; stats %+v", timeout, what, s.Stats())
			}
		}
	}
	waitUntil(15*time.Second, "50 frames written", func() bool { return s.Stats().Frames >= 50 })
	waitUntil(5*time.Second, "no backlog on a healthy disk", func() bool { return s.Stats().Backlog.IsZero() })

	stalled := time.Now()
	disk.Stall()
	time.Sleep(3 * time.Second)
	stats := s.Stats()
	// The writer takes the frames of a part and writes them at the part's
	// end (about a second), where it blocks.
	if b := stats.Backlog; b.IsZero() || b.Before(stalled.Add(-3*time.Second)) || b.After(stalled.Add(1500*time.Millisecond)) {
		t.Errorf("3 s into a disk stall that began at %s: backlog %v (queued %d bytes), want about the stall's start",
			stalled.Format("15:04:05.000"), b, stats.QueuedBytes)
	}
	if stats.LastFrame.Sub(stats.Backlog) < time.Second {
		t.Errorf("backlog %v, newest frame received %v: the frames of the stall are not counted as waiting", stats.Backlog, stats.LastFrame)
	}
	disk.Resume()
	waitUntil(10*time.Second, "the backlog written once the disk is back", func() bool { return s.Stats().Backlog.IsZero() })
}

// TestSessionDialsThroughConfig: the camera's TCP connections go through
// Config.Dial when set (the seam the chaos suite cuts a node off its
// cameras at): refused there, the session records nothing and says why;
// passed through, it records.
func TestSessionDialsThroughConfig(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1})
	var dials atomic.Int32
	var cut atomic.Bool
	cut.Store(true)
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		dials.Add(1)
		if cut.Load() {
			return nil, fmt.Errorf("dial %s: network is unreachable", address)
		}
		return (&net.Dialer{}).DialContext(ctx, network, address)
	}
	st := testkit.OpenStore(t)
	s := record(t, st, Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp", Dial: dial}, func() {
		time.Sleep(time.Second)
	})
	if stats := s.Stats(); dials.Load() == 0 || stats.Frames != 0 || !strings.Contains(stats.LastError, "network is unreachable") {
		t.Fatalf("cut off: %d dials, stats %+v", dials.Load(), stats)
	}
	cut.Store(false)
	s = record(t, st, Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp", Dial: dial}, func() {
		time.Sleep(3 * time.Second)
	})
	if stats := s.Stats(); stats.Frames == 0 {
		t.Fatalf("through the dialer: stats %+v", stats)
	}
}
