package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	var from, to timeFlag
	fs.Var(&from, "from", "start of the clip, RFC 3339 (required; the clip starts at the keyframe at or before it)")
	fs.Var(&to, "to", "end of the clip, RFC 3339 (required)")
	outPath := fs.String("o", "", "output MP4 file (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" || *stream == "" || from.t.IsZero() || to.t.IsZero() || *outPath == "" {
		fmt.Fprintln(os.Stderr, "export: --data-dir, --stream, --from, --to and -o are required")
		return 2
	}
	if !to.t.After(from.t) {
		fmt.Fprintln(os.Stderr, "export: --to must be after --from")
		return 2
	}
	s, err := segment.Open(segment.Options{Dir: *dataDir, ReadOnly: true, Logger: storeLog})
	if err != nil {
		storeErr("export", *dataDir, err)
		return 1
	}
	defer s.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tmp := *outPath + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		return 1
	}
	info, err := s.Export(ctx, *stream, from.t, to.t, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *outPath)
	}
	if err != nil {
		os.Remove(tmp)
		storeErr("export", *dataDir, err)
		return 1
	}
	fmt.Fprintf(inspectOut, "wrote %s: %s .. %s (%.3f s) from %d segments\n", *outPath,
		fmtTime(info.Start), fmtTime(info.End), info.End.Sub(info.Start).Seconds(), info.Segments)
	for _, g := range info.Gaps {
		fmt.Fprintf(inspectOut, "  gap held over: %s .. %s (%s)\n", fmtTime(g.Start), fmtTime(g.End), g.Duration().Round(time.Millisecond))
	}
	if info.Truncated {
		fmt.Fprintln(inspectOut, "  clip stops early: the codec parameters changed")
	}
	return 0
}
