package testkit

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// StallDisk is an errorfs injector (errorfs.Wrap(vfs.Default, d)) that,
// while stalled, blocks the operations Match selects until Resume, as a
// disk whose queue is stuck does; the others pass. It never fails one.
type StallDisk struct {
	// Match selects the operations a stall blocks; nil: every write
	// operation (create, write, fsync, rename, remove...).
	Match func(errorfs.Op) bool

	mu      sync.Mutex
	release chan struct{} // nil: not stalled
	blocked int           // operations waiting now
}

// WritesUnder selects every write operation on a path under dir.
func WritesUnder(dir string) func(errorfs.Op) bool {
	return func(op errorfs.Op) bool {
		return op.Kind.ReadOrWrite() == errorfs.OpIsWrite && strings.HasPrefix(op.Path, dir)
	}
}

// SegmentWrites selects the writes and syncs of segment files (not the
// index's).
func SegmentWrites(op errorfs.Op) bool {
	return strings.Contains(op.Path, "/segments/") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync)
}

// Stall starts blocking; stalling a stalled disk changes nothing.
func (d *StallDisk) Stall() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.release == nil {
		d.release = make(chan struct{})
	}
}

// Resume lets every blocked operation go on, and the next ones pass.
func (d *StallDisk) Resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.release != nil {
		close(d.release)
		d.release = nil
	}
}

// Waiting is the number of operations blocked now.
func (d *StallDisk) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.blocked
}

// MaybeError implements errorfs.Injector.
func (d *StallDisk) MaybeError(op errorfs.Op) error {
	if d.Match != nil && !d.Match(op) || d.Match == nil && op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	d.mu.Lock()
	r := d.release
	if r != nil {
		d.blocked++
	}
	d.mu.Unlock()
	if r != nil {
		<-r
		d.mu.Lock()
		d.blocked--
		d.mu.Unlock()
	}
	return nil
}

func (d *StallDisk) String() string { return "stalling disk" }
