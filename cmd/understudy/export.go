package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/segment"
)

func init() {
	register("export", "export a clip of a stream as one MP4 file", runExport)
}

func runExport(args []string) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory of the node (required)")
	stream := fs.String("stream", "", "stream id (required)")
	from, to := newTimeFlag(time.Now())
	fs.Var(from, "from", "start of the clip: RFC 3339, now or now-DUR (required; the clip starts at the keyframe at or before it)")
	fs.Var(to, "to", "end of the clip: RFC 3339, now or now-DUR (required)")
	outPath := fs.String("o", "", "output MP4 file, or - for stdout (required); a new file, written under a temporary name and renamed when complete")
	force := fs.Bool("force", false, "replace an existing regular file at -o")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *dataDir == "" || *stream == "" || from.t.IsZero() || to.t.IsZero() || *outPath == "" {
		fmt.Fprintln(os.Stderr, "export: --data-dir, --stream, --from, --to and -o are required")
		return 2
	}
	if !to.t.After(from.t) {
		fmt.Fprintln(os.Stderr, "export: --to must be after --from")
		return 2
	}
	// Installed before anything is created, so that no signal can leave a
	// temporary file behind. Writing to stdout leaves nothing to clean up:
	// there the signals keep their default, so that an export blocked on a
	// full pipe can still be killed.
	ctx := context.Background()
	if *outPath != "-" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	s, err := segment.Open(segment.Options{Dir: *dataDir, ReadOnly: true, Logger: storeLog})
	if err != nil {
		storeErr("export", *dataDir, err)
		return 1
	}
	defer s.Close()
	out, err := openClipOutput(*outPath, *force, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		return 1
	}
	defer out.abort()
	info, err := s.Export(ctx, *stream, from.t, to.t, out)
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "export: interrupted")
		} else {
			storeErr("export", *dataDir, err)
		}
		return 1
	}
	status := inspectOut
	if out.toStdout() {
		status = io.Writer(os.Stderr)
	}
	fmt.Fprintf(status, "wrote %s: %s .. %s (%.3f s) from %d segments\n", *outPath,
		fmtTime(info.Start), fmtTime(info.End), info.End.Sub(info.Start).Seconds(), info.Segments)
	for _, g := range info.Gaps {
		fmt.Fprintf(status, "  gap held over: %s .. %s (%s)\n", fmtTime(g.Start), fmtTime(g.End), g.Duration().Round(time.Millisecond))
	}
	if info.Truncated {
		fmt.Fprintln(status, "  clip stops early: the codec parameters changed")
	}
	return 0
}
