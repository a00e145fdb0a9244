package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/understudy-nvr/understudy/segment"
)

func init() {
	register("fsck", "check (and --repair) segment files against the index", runFsck)
}

func runFsck(args []string) int {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory of the node (required)")
	repair := fs.Bool("repair", false, "fix what crash recovery fixes: trim torn tails, index or quarantine unindexed files, drop entries without files, quarantine corrupt files; rebuild a corrupt index from the segment files (the old one is moved aside)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "fsck: --data-dir is required")
		return 2
	}
	// Without --repair nothing is written: the index is opened read-only
	// and recovery does not run.
	opts := segment.Options{Dir: *dataDir, ReadOnly: !*repair, Logger: storeLog}
	s, err := segment.Open(opts)
	// rebuild moves a corrupt index aside and indexes the files again.
	rebuild := func(cause error) (*segment.Store, error) {
		var ce *segment.IndexCorruptError
		if errors.As(cause, &ce) {
			cause = ce
		}
		fmt.Fprintln(inspectOut, cause)
		s, aside, err := segment.RebuildIndex(opts)
		if err != nil {
			return nil, err
		}
		if aside != "" {
			fmt.Fprintf(inspectOut, "moved the corrupt index to %s; rebuilt it from the segment files:\n", filepath.Join(*dataDir, aside))
		}
		return s, nil
	}
	rebuilt := false
	if *repair && errors.Is(err, segment.ErrIndexCorrupt) {
		s, err = rebuild(err)
		rebuilt = true
	}
	if err != nil {
		storeErr("fsck", *dataDir, err)
		return 1
	}
	rep, err := s.Check(*repair)
	if *repair && !rebuilt && errors.Is(err, segment.ErrIndexCorrupt) {
		s.Close()
		if s, err = rebuild(err); err == nil {
			rep, err = s.Check(true)
		}
	}
	if err != nil {
		if s != nil {
			s.Close()
		}
		storeErr("fsck", *dataDir, err)
		return 1
	}
	defer s.Close()
	rec := s.Recovery()
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
