package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

const (
	e2eAdmin = "admin-secret-e2e"
	e2eRead  = "read-secret-e2e"
)

// serverProc is one `understudy serve` process of the end-to-end test.
type serverProc struct {
	cmd *exec.Cmd
	log *os.File
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(t *testing.T, bin, dataDir, addr, logPath string) *serverProc {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--id", "n1", "--domain", "zone=a/rack=r1/host=h1",
		"--data-dir", dataDir, "--listen", addr, "--read-token", e2eRead, "--segment-duration", "10s")
	// The admin token comes from the environment: the env path is tested too.
	cmd.Env = append(os.Environ(), "UNDERSTUDY_ADMIN_TOKEN="+e2eAdmin)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, log: lf}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("server not ready after 15 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serverProc) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.log.Close()
}

// bearer adds the Authorization header to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// h2cClient speaks HTTP/2 without TLS (what gRPC needs), with a token.
func h2cClient(token string) *http.Client {
	tr := &http.Transport{}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr.Protocols = p
	return &http.Client{Transport: bearer{token, tr}}
}

type zstdDec struct{ *zstd.Decoder }

func (zstdDec) Close() error { return nil }

func zstdClientOptions() []connect.ClientOption {
	return []connect.ClientOption{
		connect.WithAcceptCompression("zstd",
			func() connect.Decompressor { d, _ := zstd.NewReader(nil); return zstdDec{d} },
			func() connect.Compressor { e, _ := zstd.NewWriter(nil); return e }),
		connect.WithSendCompression("zstd"),
	}
}

type gapSummary struct {
	source, system []time.Duration
	coverage       time.Duration
	first, last    time.Time
}

func timeline(t *testing.T, rc understudyv1connect.RecordingServiceClient, stream string, from, to time.Time) *understudyv1.GetTimelineResponse {
	t.Helper()
	resp, err := rc.GetTimeline(context.Background(), connect.NewRequest(&understudyv1.GetTimelineRequest{
		StreamId: stream, Start: timestamppb.New(from), End: timestamppb.New(to)}))
	if err != nil {
		t.Fatalf("GetTimeline %s: %v", stream, err)
	}
	return resp.Msg
}

// summarize sums the coverage and lists the gaps inside [first coverage
// start, last coverage end] of [from, to).
func summarize(tl *understudyv1.GetTimelineResponse, from, to time.Time) gapSummary {
	var s gapSummary
	for _, c := range tl.Coverage {
		st, en := c.Start.AsTime(), c.End.AsTime()
		if st.Before(from) {
			st = from
		}
		if en.After(to) {
			en = to
		}
		if !en.After(st) {
			continue
		}
		if s.first.IsZero() {
			s.first = st
		}
		s.last = en
		s.coverage += en.Sub(st)
	}
	for _, g := range tl.Gaps {
		st, en := g.Start.AsTime(), g.End.AsTime()
		if s.first.IsZero() || !st.After(s.first) && !en.After(s.first) || !st.Before(s.last) || st.Before(from) {
			continue
		}
		if g.Kind == understudyv1.GapKind_GAP_KIND_SOURCE {
			s.source = append(s.source, en.Sub(st))
		} else {
			s.system = append(s.system, en.Sub(st))
		}
	}
	return s
}

func sum(ds []time.Duration) (t time.Duration) {
	for _, d := range ds {
		t += d
	}
	return t
}

func ffprobe(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var d float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%f", &d); err != nil {
		t.Fatalf("ffprobe %s printed %q, not a duration (decode errors?)", path, out)
	}
	return d
}

// TestServeEndToEnd runs a real `understudy serve` process against four
// simulated cameras: streams created over plain Connect JSON and the Go
// client, 20 s of recording checked on the timeline, clips exported both
// ways and checked by ffprobe, reflection listing the services, a camera
// stopped for 10 s (one SOURCE gap), and a SIGKILL restart (a short SYSTEM
// gap, the catalog intact).
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: 60 s with real processes")
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is required (apt-get install -y ffmpeg)")
	}
	tmp := t.TempDir()
	bin := understudyBinary(t)
	cams, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 4, Width: 320, Height: 240, Bitrate: 1_000_000, GOP: 12})
	if err != nil {
		t.Fatal(err)
	}
	if err := cams.Start(); err != nil {
		t.Fatal(err)
	}
	defer cams.Close()

	dataDir := filepath.Join(tmp, "data")
	addr := freePort(t)
	logPath := filepath.Join(tmp, "server.log")
	srv := startServer(t, bin, dataDir, addr, logPath)
	defer func() {
		srv.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server log:\n%s", b)
		}
	}()
	base := "http://" + addr
	ctx := context.Background()

	// Two streams by plain HTTP POST of Connect JSON.
	for i := 0; i < 2; i++ {
		body := fmt.Sprintf(`{"stream":{"id":"cam%d","url":%q,"enabled":true,"labels":{"site":"e2e"}}}`, i, cams.URL(i))
		req, _ := http.NewRequest("POST", base+"/understudy.v1.StreamService/CreateStream", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e2eAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"enabled":true`)) {
			t.Fatalf("CreateStream JSON: %d %s", resp.StatusCode, b)
		}
	}
	// One with `understudy ctl`, as an operator would.
	if out, err := exec.Command(bin, "ctl", "--server", base, "--token", e2eAdmin,
		"streams", "add", "--id", "cam2", "--url", cams.URL(2), "--label", "site=e2e").CombinedOutput(); err != nil {
		t.Fatalf("ctl streams add: %v\n%s", err, out)
	}
	// One with the Go client, Connect with zstd.
	zstdStreams := understudyv1connect.NewStreamServiceClient(h2cClient(e2eAdmin), base, zstdClientOptions()...)
	if _, err := zstdStreams.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{
		Stream: &understudyv1.Stream{Id: "cam3", Url: cams.URL(3), Enabled: true}})); err != nil {
		t.Fatalf("CreateStream cam3: %v", err)
	}
	// Listing through gRPC over h2c, and through ctl.
	grpcStreams := understudyv1connect.NewStreamServiceClient(h2cClient(e2eAdmin), base, connect.WithGRPC())
	if lr, err := grpcStreams.ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{})); err != nil || len(lr.Msg.GetStreams()) != 4 {
		t.Fatalf("ListStreams over gRPC: %v, %v", lr, err)
	}
	if out, err := exec.Command(bin, "ctl", "--server", base, "--token", e2eRead, "streams", "list").CombinedOutput(); err != nil ||
		!bytes.Contains(out, []byte("cam2")) || !bytes.Contains(out, []byte("cam3")) {
		t.Fatalf("ctl streams list: %v\n%s", err, out)
	}
	t0 := time.Now()
	ids := []string{"cam0", "cam1", "cam2", "cam3"}
	// On an overloaded machine the simulated cameras themselves skip frames
	// (camsim Stats.Dropped): that is the source's loss, not the recorder's,
	// and the checks below allow for it.
	var dropped [4]uint64
	sourceLoss := func(i int) time.Duration {
		d := cams.Camera(i).Stats().Dropped - dropped[i]
		return time.Duration(d) * 40 * time.Millisecond
	}
	resetLoss := func() {
		for i := range dropped {
			dropped[i] = cams.Camera(i).Stats().Dropped
		}
	}

	// Reflection, while recording runs.
	refl := grpcreflect.NewClient(h2cClient(""), base)
	rs := refl.NewStream(ctx)
	services, err := rs.ListServices()
	rs.Close()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	for _, want := range []string{understudyv1connect.StreamServiceName, understudyv1connect.RecordingServiceName, understudyv1connect.ClusterServiceName} {
		if !slices.Contains(services, protoreflect.FullName(want)) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}

	// The on-disk tools and a second node refuse a data directory in use,
	// saying so (another process holds Pebble's lock: EAGAIN, not a panic).
	for _, args := range [][]string{
		{"segments", "--data-dir", dataDir, "--stream", "cam0"},
		{"fsck", "--data-dir", dataDir},
		{"serve", "--data-dir", dataDir, "--listen", freePort(t), "--admin-token", e2eAdmin},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || ee.ExitCode() > 2 || !bytes.Contains(out, []byte("in use by another process")) {
			t.Errorf("%s on a data directory in use: %v\n%s", args[0], err, out)
		}
	}

	// Camera credentials (in the control db) and video are for the owner
	// only.
	if err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dataDir {
				return err
			}
			return nil // (a file or directory gone meanwhile)
		}
		info, err := d.Info()
		if err != nil {
			return nil // (a file gone meanwhile)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", path, info.Mode().Perm())
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Phase A: 20 s of recording on all four streams.
	time.Sleep(time.Until(t0.Add(21 * time.Second)))
	rc := understudyv1connect.NewRecordingServiceClient(h2cClient(e2eRead), base, connect.WithGRPC())
	now := time.Now()
	for i, id := range ids {
		tl := timeline(t, rc, id, t0.Add(-time.Minute), now)
		s := summarize(tl, t0.Add(-time.Minute), now)
		if g := tl.GetGaps(); len(g) > 0 && !g[len(g)-1].GetEnd().AsTime().Before(s.last) {
			t.Errorf("%s: the timeline up to now ends in a %s gap at the live edge, want it to end at the newest durable part",
				id, g[len(g)-1].GetKind())
		}
		loss := sourceLoss(i)
		t.Logf("%s after 21 s: coverage %.2f s, SYSTEM gaps %v, SOURCE gaps %v, camera skipped %v", id, s.coverage.Seconds(), s.system, s.source, loss)
		if s.coverage < 18*time.Second-loss {
			t.Errorf("%s: %.2f s of coverage after 21 s, want >= 18 s (less the camera's own loss %v)", id, s.coverage.Seconds(), loss)
		}
		if loss == 0 && len(s.system) > 0 || sum(s.system) > loss+2*time.Second {
			t.Errorf("%s: SYSTEM gaps %v inside the recorded window; the camera skipped %v", id, s.system, loss)
		}
	}

	// Exports: ExportClip (Connect protocol, read token) and /v1/export.
	from, to := t0.Add(5*time.Second), t0.Add(15*time.Second)
	stream, err := understudyv1connect.NewRecordingServiceClient(h2cClient(e2eRead), base).ExportClip(ctx,
		connect.NewRequest(&understudyv1.ExportClipRequest{StreamId: "cam0", Start: timestamppb.New(from), End: timestamppb.New(to)}))
	if err != nil {
		t.Fatal(err)
	}
	var clip bytes.Buffer
	first := true
	for stream.Receive() {
		m := stream.Msg()
		if first {
			if m.ContentType != "video/mp4" || m.Start == nil || m.End == nil {
				t.Errorf("first ExportClip message lacks metadata: %q %v %v", m.ContentType, m.Start, m.End)
			}
			first = false
		}
		clip.Write(m.Chunk)
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("ExportClip: %v", err)
	}
	clipPath := filepath.Join(tmp, "clip.mp4")
	os.WriteFile(clipPath, clip.Bytes(), 0o644)
	d := ffprobe(t, clipPath)
	t.Logf("ExportClip: %d bytes, ffprobe duration %.2f s", clip.Len(), d)
	if d < 9 || d > 12 {
		t.Errorf("ExportClip duration %.2f s, want about 10 s", d)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/export?stream=cam3&start=%s&end=%s", base,
		from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)), nil)
	req.Header.Set("Authorization", "Bearer "+e2eRead)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("/v1/export: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	httpClip := filepath.Join(tmp, "http.mp4")
	os.WriteFile(httpClip, body, 0o644)
	d = ffprobe(t, httpClip)
	t.Logf("/v1/export: %d bytes, ffprobe duration %.2f s", len(body), d)
	if d < 9 || d > 12 {
		t.Errorf("/v1/export duration %.2f s, want about 10 s", d)
	}

	// Phase B: camera 1 stops for 10 s.
	resetLoss()
	stopAt := time.Now()
	cams.Camera(1).Stop()
	time.Sleep(10 * time.Second)
	if err := cams.Camera(1).Start(); err != nil {
		t.Fatal(err)
	}
	restartAt := time.Now()
	time.Sleep(4 * time.Second)
	now = time.Now()
	s := summarize(timeline(t, rc, "cam1", stopAt.Add(-5*time.Second), now), stopAt.Add(-5*time.Second), now)
	t.Logf("cam1 stopped %.2f s: SOURCE gaps %v, SYSTEM gaps %v", restartAt.Sub(stopAt).Seconds(), s.source, s.system)
	if len(s.source) != 1 || s.source[0] < 9*time.Second || s.source[0] > 13500*time.Millisecond {
		t.Errorf("camera stopped 10 s: SOURCE gaps %v, want one of about 10 s", s.source)
	}
	if sum(s.system) > 500*time.Millisecond+sourceLoss(1) {
		t.Errorf("camera stopped 10 s: SYSTEM gaps %v beside the SOURCE gap", s.system)
	}

	// Phase C: SIGKILL and restart.
	resetLoss()
	killAt := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	srv.log.Close()
	time.Sleep(2 * time.Second)
	srv = startServer(t, bin, dataDir, addr, logPath)
	downtime := time.Since(killAt)
	time.Sleep(5 * time.Second)
	now = time.Now()
	list, err := understudyv1connect.NewStreamServiceClient(h2cClient(e2eRead), base).ListStreams(ctx, connect.NewRequest(&understudyv1.ListStreamsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range list.Msg.Streams {
		got = append(got, st.Id)
		if !st.Enabled {
			t.Errorf("stream %s disabled after restart", st.Id)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("catalog after restart: %v, want %v", got, ids)
	}
	for i, id := range ids {
		s := summarize(timeline(t, rc, id, killAt.Add(-5*time.Second), now), killAt.Add(-5*time.Second), now)
		loss := sourceLoss(i)
		t.Logf("%s across the restart (downtime %.2f s): SYSTEM gaps %v, SOURCE %v, coverage %.2f s, camera skipped %v", id, downtime.Seconds(), s.system, s.source, s.coverage.Seconds(), loss)
		longest := time.Duration(0)
		for _, g := range s.system {
			longest = max(longest, g)
		}
		if len(s.system) == 0 || longest > downtime+2*time.Second ||
			loss == 0 && len(s.system) != 1 || sum(s.system)-longest > loss+2*time.Second {
			t.Errorf("%s: SYSTEM gaps %v across a restart of %.2f s, want one of at most downtime + 2 s (camera skipped %v)", id, s.system, downtime.Seconds(), loss)
		}
		if s.last.Before(now.Add(-3 * time.Second)) {
			t.Errorf("%s: recording did not resume after the restart (coverage ends %v)", id, s.last)
		}
	}
}
