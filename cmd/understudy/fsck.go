package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/understudy-nvr/understudy/segment"
)

func init() {
	register("fsck", "check (and --repair) segment files against the index", runFsck)
}

func runFsck(args []string) int {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory of the node (required)")
	repair := fs.Bool("repair", false, "fix what crash recovery fixes: trim torn tails, index or quarantine unindexed files, drop entries without files, quarantine corrupt files")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "fsck: --data-dir is required")
		return 2
	}
	// Without --repair nothing is written: the index is opened read-only
	// and recovery does not run.
	s, err := segment.Open(segment.Options{Dir: *dataDir, ReadOnly: !*repair})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsck:", err)
		return 1
	}
	defer s.Close()
	rec := s.Recovery()
	rep, err := s.Check(*repair)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsck:", err)
		return 1
	}
	problems := append(rec.Problems, rep.Problems...)
	for _, p := range problems {
		fmt.Fprintln(inspectOut, p.String())
	}
	for _, d := range append(rec.Dropped, rep.Dropped...) {
		fmt.Fprintf(inspectOut, "gap: stream %s %s .. %s (entry dropped)\n", d.Stream, fmtTime(d.Start), fmtTime(d.End))
	}
	consistent := rep.Consistent() && rec.Consistent()
	fmt.Fprintf(inspectOut, "%d index entries, %d files, %d problems", rep.Entries, rep.Files, len(problems))
	if consistent {
		fmt.Fprintln(inspectOut, ": consistent")
		return 0
	}
	fmt.Fprintln(inspectOut, ": NOT consistent (run with --repair)")
	return 1
}
