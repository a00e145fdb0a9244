package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Faults switched at run time through files: a node's disk and clock (in
// a chaosfaults build started with the disk or clock-step fault; a normal
// build never reads them) and the cameras' outages (`camsim -control`).
// Each file is written whole under a temporary name and renamed, so a
// reader never sees half of it.

// Control files of a chaosfaults node, in its data directory (read by
// cmd/understudy's diskfault_chaos.go and clock_chaos.go).
const (
	diskControlFile  = "chaos-disk-fault"
	clockControlFile = "chaos-clock-offset"
	gossipAllowFile  = "chaos-gossip-allow"
	gossipImpairFile = "chaos-gossip-impair"
	cameraCutFile    = "chaos-camera-cut"
)

// Disk faults of SetDiskFault.
const (
	DiskHealthy = ""
	DiskBlock   = "block"  // every write under the data directory waits
	DiskEIO     = "eio"    // segment creates, writes and syncs fail with EIO
	DiskENOSPC  = "enospc" // ... with ENOSPC
)

// DiskSlow is the disk fault of SetDiskFault under which every create,
// write and sync under the data directory takes d longer.
func DiskSlow(d time.Duration) string { return "slow " + d.String() }

func writeControl(path, text string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SetDiskFault switches the disk fault of node n (needs the disk fault in
// UNDERSTUDY_CHAOS_FAULTS). The node takes it within about 100 ms.
func (n *Node) SetDiskFault(mode string) error {
	if err := writeControl(filepath.Join(n.DataDir, diskControlFile), mode+"\n"); err != nil {
		return fmt.Errorf("harness: %s: disk fault %q: %w", n.ID, mode, err)
	}
	n.logf("%s: disk fault %q", n.ID, mode)
	return nil
}

// CutCameras cuts node n off its cameras (needs the camera-cut fault):
// its TCP connections to them close and new ones fail, as when the link
// to the camera network goes down; the gossip and the API stay up. The
// node takes it within about 100 ms.
func (n *Node) CutCameras() error { return n.setCameraLink("cut") }

// HealCameras ends CutCameras or DelayCameras.
func (n *Node) HealCameras() error { return n.setCameraLink("") }

// DelayCameras makes node n's link to its cameras slow (needs the
// camera-cut fault): what they send reaches the node d later, plus up to
// jitter more at random, in order; HealCameras ends it.
func (n *Node) DelayCameras(d, jitter time.Duration) error {
	return n.setCameraLink(fmt.Sprintf("delay %v %v", d, jitter))
}

func (n *Node) setCameraLink(state string) error {
	if err := writeControl(filepath.Join(n.DataDir, cameraCutFile), state+"\n"); err != nil {
		return fmt.Errorf("harness: %s: camera link %q: %w", n.ID, state, err)
	}
	n.logf("%s: camera link %q", n.ID, state)
	return nil
}

// ImpairGossip degrades node n's gossip without cutting it (needs the
// gossip-cut fault): spec is "out=F in=F delay=D" as
// cluster.ParseImpairment reads it (out=1: the node hears its peers, they
// never hear it); "" ends it. The node takes it within about 100 ms.
func (n *Node) ImpairGossip(spec string) error {
	if err := writeControl(filepath.Join(n.DataDir, gossipImpairFile), spec+"\n"); err != nil {
		return fmt.Errorf("harness: %s: gossip impairment %q: %w", n.ID, spec, err)
	}
	n.logf("%s: gossip impairment %q", n.ID, spec)
	return nil
}

// SetClockOffset sets how far node n's clock runs ahead of the machine's
// (needs the clock-step fault); the node takes it within about 100 ms.
func (n *Node) SetClockOffset(d time.Duration) error {
	if err := writeControl(filepath.Join(n.DataDir, clockControlFile), d.String()+"\n"); err != nil {
		return fmt.Errorf("harness: %s: clock offset %v: %w", n.ID, d, err)
	}
	n.logf("%s: clock offset %v", n.ID, d)
	return nil
}

// FlipSegmentBytes inverts 16 bytes in the middle of a closed archive
// segment that node n recorded itself of stream, one of those that start
// in [from, to) (the oldest such), as a disk that rots would. It returns
// the file's path (relative to the data directory) and its start time.
// Segment files are named START-CLASS-ORIGIN-NODE.mp4; the newest one of
// the stream, which may still be open, is never picked.
func (n *Node) FlipSegmentBytes(stream string, from, to time.Time) (string, time.Time, error) {
	root := filepath.Join(n.DataDir, "segments", stream)
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".mp4") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("harness: %s: %w", n.ID, err)
	}
	sort.Strings(files) // by start: the names begin with it
	if len(files) < 2 {
		return "", time.Time{}, fmt.Errorf("harness: %s: %d segment files of %s", n.ID, len(files), stream)
	}
	for _, p := range files[:len(files)-1] {
		base := filepath.Base(p)
		i := strings.IndexByte(base, '-')
		if i < 0 || !strings.HasSuffix(base, "-archive-live-"+n.ID+".mp4") {
			continue
		}
		start, err := time.Parse("20060102T150405.999999999Z", base[:i])
		if err != nil || start.Before(from) || !start.Before(to) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", time.Time{}, err
		}
		if len(b) < 1024 {
			continue
		}
		for k := len(b) / 2; k < len(b)/2+16; k++ {
			b[k] ^= 0xff
		}
		// In place, as rot would: same inode, same size.
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return "", time.Time{}, err
		}
		_, err = f.WriteAt(b[len(b)/2:len(b)/2+16], int64(len(b)/2))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", time.Time{}, err
		}
		rel, _ := filepath.Rel(n.DataDir, p)
		n.logf("%s: flipped 16 bytes of %s", n.ID, rel)
		return rel, start, nil
	}
	return "", time.Time{}, fmt.Errorf("harness: %s: no closed archive segment of %s it recorded, starting in [%v, %v)", n.ID, stream, from, to)
}

// Quarantined lists the files under node n's quarantine directory.
func (n *Node) Quarantined() []string {
	var out []string
	filepath.WalkDir(filepath.Join(n.DataDir, "quarantine"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Camera states of SetCamera (camsim's control file).
const (
	CameraUp          = "up"
	CameraPause       = "pause"       // sessions stay open, nothing sent
	CameraStop        = "stop"        // the stream ends, DESCRIBE answers 404
	CameraUnreachable = "unreachable" // every connection to it closes
)

func (c *Cluster) cameraControlPath() string { return filepath.Join(c.cfg.Dir, "camsim.control") }

// SetCamera puts camera i in state (the others keep theirs); the camsim
// process takes it within about 100 ms.
func (c *Cluster) SetCamera(i int, state string) error {
	c.camMu.Lock()
	defer c.camMu.Unlock()
	if c.camState == nil {
		c.camState = map[int]string{}
	}
	c.camState[i] = state
	var b strings.Builder
	for k, st := range c.camState {
		fmt.Fprintf(&b, "%d %s\n", k, st)
	}
	if err := writeControl(c.cameraControlPath(), b.String()); err != nil {
		return fmt.Errorf("harness: camera %d %s: %w", i, state, err)
	}
	c.cfg.Logf("camera %d: %s", i, state)
	return nil
}
