package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/engine/session"
	"github.com/understudy-nvr/understudy/internal/testkit"
	"github.com/understudy-nvr/understudy/segment"
)

// TestClipCache: a cached clip comes back as a clone of the same file
// until clipCacheTTL has passed; the least recently used clips go first
// when more than clipCacheEntries are held; a clip is forgotten on demand.
func TestClipCache(t *testing.T) {
	srv := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 5})
	st := testkit.OpenStore(t)
	sess, err := session.New(st, session.Config{Stream: "cam0", URL: srv.URL(0), Transport: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	err = sess.Run(ctx)
	stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	cov, err := st.Coverage("cam0", time.Time{}, time.Time{})
	if err != nil || len(cov) == 0 {
		t.Fatalf("coverage %v: %v", cov, err)
	}
	t0 := cov[0].Start
	cut := func(i int) *segment.Cut {
		c, err := st.CutClip(context.Background(), "cam0", t0, t0.Add(time.Second+time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Size(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	cc := newClipCache()
	cc.now = func() time.Time { return now }

	c0 := cut(0)
	cc.put("k0", c0)
	got := cc.get("k0")
	if got == nil || got == c0 {
		t.Fatalf("get after put: %p (put %p), want a clone", got, c0)
	}
	_, e0, _ := c0.Size()
	if _, e, _ := got.Size(); e != e0 {
		t.Errorf("the cached clip's tag %s, the clip put %s", e, e0)
	}
	for i := 1; i <= clipCacheEntries; i++ {
		if i == clipCacheEntries {
			cc.get("k0") // used: k1 is now the least recently used
		}
		cc.put(fmt.Sprint("k", i), cut(i))
	}
	if cc.get("k0") == nil || cc.get("k1") != nil || cc.get("k2") == nil {
		t.Errorf("after %d puts: k0 (used) %v, k1 (least recently used) %v, want k0 kept, k1 dropped",
			clipCacheEntries+1, cc.get("k0") != nil, cc.get("k1") != nil)
	}
	cc.forget("k2")
	if cc.get("k2") != nil {
		t.Error("k2 still cached after forget")
	}
	now = now.Add(clipCacheTTL)
	if cc.get("k0") != nil || len(cc.entries) != 0 {
		t.Errorf("%d clips still cached after %v", len(cc.entries), clipCacheTTL)
	}
}
