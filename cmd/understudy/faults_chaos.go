//go:build chaosfaults

package main

import (
	"os"
	"strings"

	"github.com/understudy-nvr/understudy/engine"
)

// A chaosfaults build (the chaos harness's BuildFaultBinary) reads
// UNDERSTUDY_CHAOS_FAULTS, a comma-separated list of faults:
//
//	no-backfill  the node never repairs its archive (Config.NoBackfill)
func init() {
	chaosFaults = func(cfg *engine.Config) {
		for _, f := range strings.Split(os.Getenv("UNDERSTUDY_CHAOS_FAULTS"), ",") {
			switch f {
			case "no-backfill":
				cfg.NoBackfill = true
			}
		}
	}
}
