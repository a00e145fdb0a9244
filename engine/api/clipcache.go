package api

import (
	"slices"
	"sync"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

// clipCache keeps the clips GET /v1/export cut last for players, so that a
// player seeking in a clip (a range request per seek) is not made to wait
// while the node reads and verifies every segment of the clip again: a
// seek near the end of a 15-minute clip of 222 MB took 123 ms instead of
// 1.04 s (the rest is writing the moov, which grows with the samples). It
// holds cut clips as templates that are cloned for each request, never
// written themselves, for at most clipCacheTTL; a stale entry is at worst
// a clip cut that long ago.
type clipCache struct {
	mu      sync.Mutex
	now     func() time.Time
	entries []clipEntry // least recently used first
}

type clipEntry struct {
	key string
	cut *segment.Cut
	at  time.Time // when it was cut
}

const (
	clipCacheTTL     = 2 * time.Minute
	clipCacheEntries = 8
	// clipCacheSamples bounds the samples held, about 60 bytes each: a
	// one-hour clip at 25 fps with audio is about 270,000 (16 MB).
	clipCacheSamples = 500_000
)

func newClipCache() *clipCache { return &clipCache{now: time.Now} }

// get returns a clone of the clip cut for key, or nil.
func (cc *clipCache) get(key string) *segment.Cut {
	cc.mu.Lock()
	cc.expire()
	var tmpl *segment.Cut
	for i, e := range cc.entries {
		if e.key == key {
			tmpl = e.cut
			cc.entries = append(slices.Delete(cc.entries, i, i+1), e) // most recently used last
			break
		}
	}
	cc.mu.Unlock()
	if tmpl == nil {
		return nil
	}
	return tmpl.Clone() // a template is never written: cloning it needs no lock
}

// put keeps a clone of c, whose Size has run, for key.
func (cc *clipCache) put(key string, c *segment.Cut) {
	if c.Samples() > clipCacheSamples {
		return
	}
	tmpl := c.Clone()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.expire()
	cc.drop(key)
	cc.entries = append(cc.entries, clipEntry{key: key, cut: tmpl, at: cc.now()})
	held := 0
	for _, e := range cc.entries {
		held += e.cut.Samples()
	}
	for len(cc.entries) > clipCacheEntries || held > clipCacheSamples {
		held -= cc.entries[0].cut.Samples()
		cc.entries = slices.Delete(cc.entries, 0, 1)
	}
}

// forget drops the clip of key (its files failed to read).
func (cc *clipCache) forget(key string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.drop(key)
}

func (cc *clipCache) drop(key string) {
	for i, e := range cc.entries {
		if e.key == key {
			cc.entries = slices.Delete(cc.entries, i, i+1)
			return
		}
	}
}

func (cc *clipCache) expire() {
	now := cc.now()
	k := 0
	for _, e := range cc.entries {
		if now.Sub(e.at) < clipCacheTTL {
			cc.entries[k] = e
			k++
		}
	}
	clear(cc.entries[k:])
	cc.entries = cc.entries[:k]
}
