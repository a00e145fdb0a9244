//go:build chaosfaults

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// ClockControlFile is the file in a node's data directory that sets how
// far the clock of a chaosfaults build started with the clock-step fault
// runs ahead of the machine's: a Go duration (5s, -2s); missing, empty or
// unparsable: 0. Read every 100 ms, so writing it steps the clock at once.
const ClockControlFile = "chaos-clock-offset"

// steppedClock returns time.Now plus the offset the control file says.
func steppedClock(dataDir string) func() time.Time {
	var offset atomic.Int64
	path := filepath.Join(dataDir, ClockControlFile)
	watchControl(path, func(text string) {
		d, err := time.ParseDuration(text)
		if err != nil {
			d = 0
		}
		if old := offset.Swap(int64(d)); old != int64(d) {
			fmt.Fprintf(os.Stderr, "chaos fault: clock offset %v (was %v)\n", d, time.Duration(old))
		}
	})
	return func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
}
