package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/replica"
)

// The node's rolling buffer (package replica): what it records as a
// replica is kept for BufferWindow under BufferBudgetMiB; bufferLoop
// evicts what falls out every bufferInterval.

// bufferInterval is how often the buffer is trimmed: at 50 cameras of
// 4 Mbit/s it grows by about 250 MB in that time, so a budget is overrun
// by at most that much.
var bufferInterval = 10 * time.Second

// bufferEventEvery bounds the early-eviction events to one a minute.
const bufferEventEvery = time.Minute

func (n *Node) newBuffer() (*replica.Buffer, error) {
	return replica.New(n.store, replica.Policy{Window: n.cfg.BufferWindow, Budget: int64(n.cfg.BufferBudgetMiB) << 20})
}

func (n *Node) bufferLoop(ctx context.Context) {
	t := time.NewTicker(bufferInterval)
	defer t.Stop()
	var lastEvent time.Time
	for {
		now := time.Now()
		rep, err := n.buffer.Enforce(now)
		if err != nil {
			n.log.Error("buffer eviction failed", "err", err)
		}
		if rep.Evicted > 0 {
			n.log.Debug("buffer evicted", "segments", rep.Evicted, "bytes", rep.Bytes, "early", rep.Early, "held_bytes", rep.Held)
		}
		if rep.OverBudget && now.Sub(lastEvent) >= bufferEventEvery {
			lastEvent = now
			p := n.buffer.Policy()
			n.log.Warn("replica buffer over its budget: the oldest segments went early", "reach", rep.Reach.Round(time.Second),
				"window", p.Window, "budget_bytes", p.Budget)
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_BUFFER_EVICTED_EARLY, Node: n.cfg.ID,
				Message: fmt.Sprintf("replica buffer over its budget of %d MiB: it reaches back %s of its %s window",
					p.Budget>>20, rep.Reach.Round(time.Second), p.Window),
				Details: map[string]string{
					"reach_seconds":    strconv.FormatFloat(rep.Reach.Seconds(), 'f', 0, 64),
					"window_seconds":   strconv.FormatFloat(p.Window.Seconds(), 'f', 0, 64),
					"budget_bytes":     strconv.FormatInt(p.Budget, 10),
					"held_bytes":       strconv.FormatInt(rep.Held, 10),
					"evicted_segments": strconv.Itoa(rep.Early),
				}})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
