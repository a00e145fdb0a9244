package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/engine/cluster"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// A node whose disk refuses segment writes cannot record: it marks itself
// saturated in its membership metadata, so every node's placement moves
// its copies to other nodes (make-before-break: it keeps its sessions,
// recording what it can, until the new recorders report the streams
// recorded, or the handoff timeout). A lone node, or a cluster whose
// every node is saturated, keeps recording everything (placement then
// over-records). The mark is the node's own: an operator's "draining"
// stays, and "active" set by an operator does not clear it.
//
// Detection: a write error of a session (opening, writing or closing a
// segment) that carries one of diskFaultErrnos, or a failed probe write.
// Recovery, with hysteresis: while faulted the node probes the disk every
// diskProbeFaulted (Store.ProbeWrite: 64 KiB written, fsynced, removed
// under segments/); diskProbesToRecover successes in a row, with no
// session write error in between, clear the mark. While healthy it probes
// every diskProbeHealthy, so a node with no streams (they all moved away,
// or none is placed on it yet) still finds a broken disk before it takes
// any.

// Timing of the disk probes and the recovery hysteresis.
const (
	diskProbeHealthy    = 10 * time.Second
	diskProbeFaulted    = 2 * time.Second
	diskProbesToRecover = 3
)

// diskFaultErrnos are the errors that mean the disk cannot take writes:
// an I/O error, a full disk or quota, a file system remounted read-only.
// Other refusals (a frame the writer rejects, too many open files) are
// not the disk's.
var diskFaultErrnos = []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS}

// diskFaultErrno returns the disk fault errno err carries, if any.
func diskFaultErrno(err error) (syscall.Errno, bool) {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return 0, false
	}
	for _, e := range diskFaultErrnos {
		if errno == e {
			return errno, true
		}
	}
	return 0, false
}

// diskHealth is whether this node's disk takes writes. Session events and
// the probe loop update it; the probe loop alone applies a change (an
// event, the membership metadata), since the metadata update may block.
type diskHealth struct {
	mu       sync.Mutex
	faulted  bool
	since    time.Time // of the first failure of the fault
	lastErr  error
	okInARow int // probes that succeeded since the last failure
	faults   uint64
	// changed holds a token when a failure began a fault.
	changed chan struct{}
}

func newDiskHealth() *diskHealth { return &diskHealth{changed: make(chan struct{}, 1)} }

// fail records a disk fault error; it never blocks.
func (d *diskHealth) fail(now time.Time, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr, d.okInARow = err, 0
	if d.faulted {
		return
	}
	d.faulted, d.since = true, now
	d.faults++
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// probed records a successful probe: true when it ends the fault.
func (d *diskHealth) probed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.faulted {
		return false
	}
	d.okInARow++
	if d.okInARow < diskProbesToRecover {
		return false
	}
	d.faulted, d.okInARow = false, 0
	return true
}

// Faulted reports whether the node is saturated for a disk fault, since
// when, and the last error.
func (d *diskHealth) state() (faulted bool, since time.Time, last error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.faulted, d.since, d.lastErr
}

// noteWriteError is called with every write error of a session.
func (n *Node) noteWriteError(err error) {
	if _, ok := diskFaultErrno(err); ok {
		n.disk.fail(time.Now(), err)
	}
}

// watchDisk probes the disk and applies the changes of its health until
// ctx ends.
func (n *Node) watchDisk(ctx context.Context) {
	reported := false // the fault the last DISK_FAULT event announced
	applied := false  // the fault the metadata shows
	t := time.NewTimer(diskProbeHealthy)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.disk.changed:
		case <-t.C:
			pct, known := n.freePercent()
			faulted, _, last := n.disk.state()
			var low *lowSpaceError
			switch {
			case known && pct < n.cfg.DiskFreeMinPercent:
				n.disk.fail(time.Now(), &lowSpaceError{pct: pct, min: n.cfg.DiskFreeMinPercent})
			case known && faulted && errors.As(last, &low) && pct < n.cfg.DiskFreeMinPercent+diskFreeHysteresis:
				// Not enough above the threshold yet to count as healthy.
			default:
				n.probeDisk()
			}
		}
		faulted, _, last := n.disk.state()
		if faulted && !reported {
			errno, _ := diskFaultErrno(last)
			msg := fmt.Sprintf("the disk refuses writes (%v): the node is saturated, its streams move to other nodes", errno)
			var low *lowSpaceError
			if errors.As(last, &low) {
				msg = fmt.Sprintf("the disk is nearly full (%.1f %% available, below %.1f %%): the node is saturated, its streams move to other nodes", low.pct, low.min)
			}
			n.log.Error(msg, "err", last, "errno", errno.Error())
			n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_DISK_FAULT, Node: n.cfg.ID, Message: msg,
				Details: map[string]string{"state": "saturated", "error": last.Error(), "errno": errno.Error()}})
		}
		reported = faulted
		if faulted != applied {
			// A failed update is tried again at the next probe.
			if err := n.announceState(); err != nil {
				n.log.Warn("announcing the node state", "err", err)
			} else {
				applied = faulted
			}
		}
		if faulted {
			t.Reset(diskProbeFaulted)
		} else {
			t.Reset(diskProbeHealthy)
		}
	}
}

// diskFreeHysteresis is how far above DiskFreeMinPercent (in percentage
// points) the available space must be before a node saturated for low
// space counts its probes towards recovery.
const diskFreeHysteresis = 1.0

// lowSpaceError is a disk fault of too little available space; it
// carries ENOSPC.
type lowSpaceError struct{ pct, min float64 }

func (e *lowSpaceError) Error() string {
	return fmt.Sprintf("only %.1f %% of the data file system is available (disk-free-min-percent %.1f)", e.pct, e.min)
}

func (e *lowSpaceError) Unwrap() error { return syscall.ENOSPC }

// freePercent is the available share of the data directory's file
// system, in percent; false when it cannot be told.
func (n *Node) freePercent() (float64, bool) {
	var avail, total uint64
	if n.cfg.DiskSpace != nil {
		avail, total = n.cfg.DiskSpace()
	} else {
		var st syscall.Statfs_t
		if err := syscall.Statfs(n.cfg.DataDir, &st); err != nil {
			return 0, false
		}
		avail, total = st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
	}
	if total == 0 {
		return 0, false
	}
	return 100 * float64(avail) / float64(total), true
}

// probeDisk makes one probe write and records its outcome.
func (n *Node) probeDisk() {
	if err := n.store.ProbeWrite(); err != nil {
		if _, ok := diskFaultErrno(err); ok {
			n.disk.fail(time.Now(), err)
		} else {
			n.log.Warn("disk probe failed", "err", err)
		}
		return
	}
	if !n.disk.probed() {
		return
	}
	_, since, last := n.disk.state()
	n.log.Info("disk writes succeed again: node no longer saturated", "faulted_for", time.Since(since).Round(time.Millisecond),
		"probes", diskProbesToRecover, "last_error", fmt.Sprint(last))
	n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_DISK_FAULT, Node: n.cfg.ID,
		Message: fmt.Sprintf("disk writes succeed again (%d probes in a row): the node takes streams again", diskProbesToRecover),
		Details: map[string]string{"state": "recovered", "faulted_for": time.Since(since).Round(time.Millisecond).String()}})
}

// stateLocked is this node's cluster state: the operator's (selfState),
// made saturated by a disk fault unless the operator drains the node.
// n.placeMu is held.
func (n *Node) stateLocked() string {
	if faulted, _, _ := n.disk.state(); faulted && n.selfState != cluster.StateDraining {
		return cluster.StateSaturated
	}
	return n.selfState
}

// announceState puts this node's state and weight in its membership
// metadata and asks for a reconcile round.
func (n *Node) announceState() error {
	n.announceMu.Lock()
	defer n.announceMu.Unlock()
	n.placeMu.Lock()
	st, w := n.stateLocked(), n.selfWeight
	n.placeMu.Unlock()
	n.poke()
	if n.cl == nil {
		return nil
	}
	return n.cl.SetMeta(func(m *cluster.Meta) { m.State, m.Weight = st, w })
}
