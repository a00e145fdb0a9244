//go:build chaosfaults

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// DiskControlFile is the file in a node's data directory that switches
// the disk fault of a chaosfaults build started with the disk fault (see
// faults_chaos.go). Its first word is the fault: block (every write
// under the data directory, segments and index alike, waits until the
// fault changes), slow D (every create, write and sync under the data
// directory takes D longer, a duration such as 200ms: a disk that keeps
// up, or not, but never fails), eio or enospc (creating, writing and
// syncing segment files fail with that errno; the index keeps working);
// missing, empty or anything else: a healthy disk. The node reads it with the
// operating system's calls, never through the faulty file system, every
// 100 ms.
const DiskControlFile = "chaos-disk-fault"

// diskFault is the errorfs injector behind Config.DiskFS.
type diskFault struct {
	dir string // the data directory, cleaned

	mu      sync.Mutex
	mode    string
	slow    time.Duration // the added latency of mode slow
	release chan struct{} // closed when a block ends; nil unless blocked
}

func newDiskFault(dataDir string) *diskFault {
	d := &diskFault{dir: filepath.Clean(dataDir)}
	watchControl(filepath.Join(dataDir, DiskControlFile), d.apply)
	return d
}

// apply reads the control file's text.
func (d *diskFault) apply(text string) {
	mode, slow := "", time.Duration(0)
	if f := strings.Fields(text); len(f) > 0 {
		switch f[0] {
		case "block", "eio", "enospc":
			mode = f[0]
		case "slow":
			if len(f) > 1 {
				if v, err := time.ParseDuration(f[1]); err == nil && v > 0 && v <= time.Minute {
					mode, slow = "slow", v
				}
			}
		}
	}
	d.set(mode, slow)
}

func (d *diskFault) set(mode string, slow time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if mode == d.mode && slow == d.slow {
		return
	}
	fmt.Fprintf(os.Stderr, "chaos fault: disk %q %v (was %q)\n", mode, slow, d.mode)
	d.slow = slow
	if d.release != nil {
		close(d.release)
		d.release = nil
	}
	if mode == "block" {
		d.release = make(chan struct{})
	}
	d.mode = mode
}

func (d *diskFault) MaybeError(op errorfs.Op) error {
	if !strings.HasPrefix(op.Path, d.dir+string(filepath.Separator)) {
		return nil
	}
	d.mu.Lock()
	mode, release, slow := d.mode, d.release, d.slow
	d.mu.Unlock()
	switch mode {
	case "block":
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			<-release
		}
	case "slow":
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData:
			time.Sleep(slow)
		}
	case "eio", "enospc":
		if !strings.HasPrefix(op.Path, filepath.Join(d.dir, "segments")+string(filepath.Separator)) {
			return nil
		}
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData:
			if mode == "eio" {
				return syscall.EIO
			}
			return syscall.ENOSPC
		}
	}
	return nil
}

func (d *diskFault) String() string { return "chaos disk fault" }

// diskFaultFS is the segment store's file system of a node with the disk
// fault: the operating system's, through the injector.
func diskFaultFS(dataDir string) vfs.FS {
	return errorfs.Wrap(vfs.Default, newDiskFault(dataDir))
}
