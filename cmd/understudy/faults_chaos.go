//go:build chaosfaults

package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/understudy-nvr/understudy/engine"
	"github.com/understudy-nvr/understudy/engine/cluster"
)

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
//	             heals it. The API and the cameras stay reachable.
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
				sig := make(chan os.Signal, 4)
				signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
				go func() {
					for s := range sig {
						if s == syscall.SIGUSR1 {
							t.Cut()
							fmt.Fprintln(os.Stderr, "chaos fault: gossip cut off")
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
