// Package events is the node's event bus: what WatchEvents streams.
// Publishing never blocks: a subscriber whose buffer is full loses events,
// counted in its Dropped.
package events

import (
	"sync"
	"sync/atomic"
	"time"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// Event is one entry of the node's event bus, what WatchEvents streams.
type Event struct {
	Time    time.Time
	Kind    understudyv1.EventKind
	Stream  string // empty for events about no stream
	Node    string
	Message string // never holds credentials
	Details map[string]string
}

// EventBus fans events out to subscribers. Publish never blocks: each
// subscriber has a bounded channel, and an event that does not fit is
// dropped for that subscriber (counted in its Dropped and in the bus
// total). A slow watcher thus loses events but never slows recording.
type EventBus struct {
	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
}

// Subscription is one subscriber of an EventBus.
type Subscription struct {
	// C receives the events.
	C       chan Event
	dropped atomic.Uint64
	bus     *EventBus
	once    sync.Once
}

// NewEventBus returns an empty bus.
func NewEventBus() *EventBus {
	return &EventBus{subs: make(map[*Subscription]struct{})}
}

// Subscribe returns a subscription buffering up to buf events.
func (b *EventBus) Subscribe(buf int) *Subscription {
	if buf < 1 {
		buf = 1
	}
	s := &Subscription{C: make(chan Event, buf), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Dropped is the number of events this subscriber lost because its buffer
// was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C; it is idempotent.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		close(s.C)
		s.bus.mu.Unlock()
	})
}

// Publish sends e to every subscriber that has room for it.
func (b *EventBus) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.C <- e:
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

// Dropped is the total number of events dropped for slow subscribers.
func (b *EventBus) Dropped() uint64 { return b.dropped.Load() }
