//go:build chaosfaults

package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/engine"
	"github.com/understudy-nvr/understudy/engine/cluster"
)

// GossipAllowFile lists, in a node's data directory, the hosts whose
// gossip a gossip-cut node still hears when cut off.
const GossipAllowFile = "chaos-gossip-allow"

// GossipImpairFile, in a node's data directory, sets the impairment of
// its gossip transport (gossip-cut fault).
const GossipImpairFile = "chaos-gossip-impair"

// watchImpairment applies the impairment the file says, every 100 ms; an
// unreadable one is reported once and changes nothing.
func watchImpairment(t *cluster.FaultTransport, path string) {
	watchControl(path, func(text string) {
		im, err := cluster.ParseImpairment(text)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos fault: gossip impairment:", err)
			return
		}
		t.Impair(im)
		fmt.Fprintf(os.Stderr, "chaos fault: gossip impaired %+v\n", im)
	})
}

// watchControl reads a fault's control file every 100 ms and calls apply
// with its text, trimmed, once at the start and whenever it changes; a
// missing file reads as "". It runs until the process ends.
func watchControl(path string, apply func(text string)) {
	go func() {
		last := ""
		for first := true; ; first = false {
			b, _ := os.ReadFile(path)
			if text := strings.TrimSpace(string(b)); first || text != last {
				apply(text)
				last = text
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

// A chaosfaults build (the chaos harness's BuildFaultBinary) reads
// UNDERSTUDY_CHAOS_FAULTS, a comma-separated list of faults:
//
//	no-backfill  the node never repairs its archive (Config.NoBackfill)
//	no-make-before-break
//	             a node stops a stream within a second of its role moving
//	             away, without waiting for the new recorders
//	             (Config.NoMakeBeforeBreak)
//	drop-parts   the node silently leaves out one segment part in a
//	             hundred: not written, yet indexed and checksummed as if
//	             it were (Config.DropPartEvery); drop-parts=ID does so
//	             only on the node of that id
//	gossip-cut   the gossip runs over a cluster.FaultTransport on
//	             --gossip-listen: SIGUSR1 cuts the node off from every
//	             peer's gossip (packets dropped, dials refused), SIGUSR2
//	             heals it. The API and the cameras stay reachable. The
//	             hosts listed in the file chaos-gossip-allow in the
//	             data directory (GossipAllowFile) when SIGUSR1 comes
//	             stay reachable: a failure domain cut off together.
//	             The file chaos-gossip-impair (GossipImpairFile), read
//	             every 100 ms, degrades the gossip without cutting it:
//	             "out=F in=F delay=D" (cluster.ParseImpairment), one-way
//	             loss and delay; missing or empty: none.
//	disk         the segment store goes through an errorfs injector
//	             switched at run time by the file chaos-disk-fault in
//	             the data directory (DiskControlFile): block, slow D,
//	             eio, enospc, or healthy
//	camera-cut   the node's TCP connections to its cameras go through a
//	             dialer that the file chaos-camera-cut in the data
//	             directory (CameraControlFile) cuts: "cut" closes them
//	             and fails new ones with ENETUNREACH; "delay D [J]"
//	             delivers what the cameras send D later (plus up to J
//	             more, at random); read every 100 ms
//	clock-step   the node's clock (Config.Clock: recorded timestamps,
//	             the catalog's HLC) runs ahead of the machine's by the
//	             duration in the file chaos-clock-offset in the data
//	             directory (ClockControlFile), read every 100 ms
func init() {
	chaosFaults = func(cfg *engine.Config) {
		for _, f := range strings.Split(os.Getenv("UNDERSTUDY_CHAOS_FAULTS"), ",") {
			switch f {
			case "no-backfill":
				cfg.NoBackfill = true
			case "no-make-before-break":
				cfg.NoMakeBeforeBreak = true
			case "drop-parts", "drop-parts=" + cfg.ID:
				cfg.DropPartEvery = 100
			case "disk":
				cfg.DiskFS = diskFaultFS(cfg.DataDir)
			case "clock-step":
				cfg.Clock = steppedClock(cfg.DataDir)
			case "camera-cut":
				cfg.CameraDial = newCameraLink(cfg.DataDir).Dial
			case "gossip-cut":
				host, port, err := net.SplitHostPort(cfg.GossipListen)
				p, perr := strconv.Atoi(port)
				if err != nil || perr != nil {
					fmt.Fprintf(os.Stderr, "serve: chaos fault gossip-cut: --gossip-listen %q: want host:port\n", cfg.GossipListen)
					os.Exit(2)
				}
				t, err := cluster.NewFaultTransport(host, p)
				if err != nil {
					fmt.Fprintln(os.Stderr, "serve: chaos fault gossip-cut:", err)
					os.Exit(1)
				}
				cfg.GossipTransport = t
				watchImpairment(t, filepath.Join(cfg.DataDir, GossipImpairFile))
				sig := make(chan os.Signal, 4)
				signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
				go func() {
					for s := range sig {
						if s == syscall.SIGUSR1 {
							// The hosts of the node's own failure domain,
							// cut off with it, stay reachable.
							b, _ := os.ReadFile(filepath.Join(cfg.DataDir, GossipAllowFile))
							allow := strings.Fields(string(b))
							t.CutExcept(allow...)
							fmt.Fprintln(os.Stderr, "chaos fault: gossip cut off, but from", allow)
						} else {
							t.Heal()
							fmt.Fprintln(os.Stderr, "chaos fault: gossip healed")
						}
					}
				}()
			}
		}
	}
}
