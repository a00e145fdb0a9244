package engine

import (
	"math"

	"github.com/understudy-nvr/understudy/engine/events"
	"github.com/understudy-nvr/understudy/engine/session"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// The node's event bus is package events; these names keep the node's
// code and its callers short.
type (
	// Event is one entry of the node's event bus, what WatchEvents streams.
	Event = events.Event
	// EventBus fans events out to subscribers (events.EventBus).
	EventBus = events.EventBus
	// Subscription is one subscriber of an EventBus.
	Subscription = events.Subscription
)

// NewEventBus returns an empty bus.
func NewEventBus() *EventBus { return events.NewEventBus() }

// sessionEventKind maps a recording session's event to the API's kind.
func sessionEventKind(k session.EventKind) understudyv1.EventKind {
	switch k {
	case session.EventConnected, session.EventOverflowEnded:
		return understudyv1.EventKind_EVENT_KIND_GAP_CLOSED
	case session.EventDisconnected, session.EventOverflow:
		return understudyv1.EventKind_EVENT_KIND_GAP_OPENED
	case session.EventSourceUnreachable:
		return understudyv1.EventKind_EVENT_KIND_SOURCE_UNREACHABLE
	case session.EventWriteError:
		return understudyv1.EventKind_EVENT_KIND_DISK_FAULT
	}
	return understudyv1.EventKind_EVENT_KIND_UNSPECIFIED
}

func float64bits(f float64) uint64     { return math.Float64bits(f) }
func float64frombits(b uint64) float64 { return math.Float64frombits(b) }
