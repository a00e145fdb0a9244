package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/check"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = BuildBinary(context.Background(), "../..", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestNoneAlive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	a := &Process{alive: []check.Interval{{Start: at(0), End: at(10)}, {Start: at(20), End: at(30)}}}
	b := &Process{alive: []check.Interval{{Start: at(5), End: at(12)}, {Start: at(25), End: at(40)}}}
	got := NoneAlive(at(0), at(50), a, b)
	want := []check.Interval{{Start: at(12), End: at(20)}, {Start: at(40), End: at(50)}}
	if !slices.Equal(got, want) {
		t.Errorf("NoneAlive = %v, want %v", got, want)
	}
	if got := NoneAlive(at(0), at(10), a); len(got) != 0 {
		t.Errorf("always alive: %v", got)
	}
	if got := NoneAlive(at(0), at(10)); !slices.Equal(got, []check.Interval{{Start: at(0), End: at(10)}}) {
		t.Errorf("no process: %v", got)
	}
}

func get(url string) (int, error) {
	c := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestProcessFaults runs two real nodes on distinct loopback addresses
// and a camsim process, and puts a node through SIGSTOP/SIGCONT, SIGTERM,
// restart and kill -9, checking what the process does and what the
// harness records as alive.
func TestProcessFaults(t *testing.T) {
	c, err := New(Config{Bin: bin, Dir: t.TempDir(), Nodes: 2, Cameras: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Nodes[0], c.Nodes[1]
	if !strings.HasPrefix(n1.Addr, "127.0.0.2:") || !strings.HasPrefix(n2.Addr, "127.0.0.3:") {
		t.Fatalf("node addresses %s, %s", n1.Addr, n2.Addr)
	}
	if filepath.Dir(n1.DataDir) == filepath.Dir(n2.DataDir) {
		t.Fatal("nodes share a data directory")
	}
	if err := c.AddStream(ctx, n1, "cam0", c.CameraURL(0)); err != nil {
		t.Fatal(err)
	}
	if err := c.AddStream(ctx, n1, "bad/id", c.CameraURL(0)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a bad stream id: %v, want a 400", err)
	}

	if err := n1.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(n1.URL() + "/readyz"); err == nil {
		t.Error("a frozen node answered")
	}
	if code, err := get(n2.URL() + "/readyz"); err != nil || code != 200 {
		t.Errorf("the other node: %d %v", code, err)
	}
	if err := n1.Thaw(); err != nil {
		t.Fatal(err)
	}
	if code, err := get(n1.URL() + "/readyz"); err != nil || code != 200 {
		t.Errorf("thawed node: %d %v", code, err)
	}

	if err := n2.Term(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n2.Running() {
		t.Error("still running after SIGTERM")
	}
	if err := n2.Term(time.Second); err == nil {
		t.Error("SIGTERM to a stopped node: no error")
	}
	if err := n2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Start(ctx); err == nil {
		t.Error("starting a running node: no error")
	}

	time.Sleep(2 * time.Second)
	// Exported from the node that recorded it (the first node froze for a
	// moment, so only its own check is meaningful here).
	mp4, err := c.Export(ctx, n1, "cam0", time.Now().Add(-5*time.Second), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if frames, err := check.ExtractFrames(mp4); err != nil || len(frames) < 25 {
		t.Fatalf("export: %d frames, %v", len(frames), err)
	}
	if _, err := c.Export(ctx, n1, "nosuch", time.Now().Add(-5*time.Second), time.Now()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("export of a stream that does not exist: %v", err)
	}

	n1.Kill()
	if n1.Running() {
		t.Error("running after kill -9")
	}
	alive, starts := n1.Alive(time.Now())
	if len(alive) != 2 || len(starts) != 2 {
		t.Errorf("node 1 alive %v (starts %v): want two intervals around the freeze", alive, starts)
	}
	alive, _ = n2.Alive(time.Now())
	if len(alive) != 2 || alive[1].End.Sub(alive[1].Start) > 10*time.Second {
		t.Errorf("node 2 alive %v: want two, the second up to now", alive)
	}
	down := NoneAlive(alive[0].Start, time.Now(), n1.Process, n2.Process)
	if len(down) != 0 {
		t.Errorf("n1 and n2 were never down together, NoneAlive says %v", down)
	}
}

func TestHoles(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	spans := []Span{{at(5), at(8)}, {at(0), at(3)}, {at(7), at(9)}}
	got := Holes(spans, at(0), at(12))
	want := []Span{{at(3), at(5)}, {at(9), at(12)}}
	if !slices.Equal(got, want) {
		t.Errorf("Holes = %v, want %v", got, want)
	}
	if got := Holes(nil, at(0), at(1)); !slices.Equal(got, []Span{{at(0), at(1)}}) {
		t.Errorf("nothing covered: %v", got)
	}
	if got := Holes([]Span{{at(-5), at(20)}}, at(0), at(10)); len(got) != 0 {
		t.Errorf("all covered: %v", got)
	}
}
