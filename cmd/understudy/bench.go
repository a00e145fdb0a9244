package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/bench"
)

func init() {
	register("bench", "measure how many cameras one node records, and at what cost", runBench)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: understudy bench [--full] [--dir DIR] [--report FILE]\n\nThe short run finds the 4 Mbit/s capacity of one node (about 5 minutes); --full adds 1 and 8 Mbit/s and repeats 4 Mbit/s three times.")
		fs.PrintDefaults()
	}
	full := fs.Bool("full", false, "1, 4 and 8 Mbit/s, and 4 Mbit/s three times")
	dir := fs.String("dir", "", "working directory for the node's data and logs (default: a temporary one, removed)")
	report := fs.String("report", "bench-report.json", "where to write the JSON report")
	maxStreams := fs.Int("max-streams", 256, "the most streams the ramp tries")
	peer := fs.String("peer", "", "the MediaMTX binary to compare with (default bin/mediamtx beside this binary, if it is there; scripts/build-mediamtx.sh builds it)")
	noPeer := fs.Bool("no-peer", false, "skip the side-by-side run")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *maxStreams < 2 || *maxStreams > 4096 {
		fmt.Fprintf(os.Stderr, "bench: --max-streams %d: want 2..4096\n", *maxStreams)
		return 2
	}
	bin, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "understudy-bench-"); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(work)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	wd, _ := os.Getwd()
	rep := &bench.Report{Machine: bench.ThisMachine(), Commit: bench.Commit(wd), Date: time.Now(), Full: *full}
	progress := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	run := func(bitrate int, sub string) (*bench.IngestResult, error) {
		progress("ingest at %d kbit/s: ramp from 8 streams, doubling, then bisecting", bitrate/1000)
		warm, window := 6*time.Second, 10*time.Second
		if *full {
			warm, window = 10*time.Second, 20*time.Second
		}
		return bench.Ingest(ctx, bench.IngestConfig{Bin: bin, Dir: filepath.Join(work, sub), Bitrate: bitrate,
			Start: 8, Max: *maxStreams, Resolution: max(2, *maxStreams/64), Warm: warm, Window: window, Progress: progress})
	}
	rates := []int{4_000_000}
	if *full {
		rates = []int{1_000_000, 4_000_000, 8_000_000}
	}
	for _, r := range rates {
		res, err := run(r, fmt.Sprintf("ingest-%d", r/1000))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		rep.Ingest = append(rep.Ingest, res)
		if r == 4_000_000 {
			rep.Repeat = append(rep.Repeat, res.Capacity)
		}
	}
	if *full {
		for i := 2; i <= 3; i++ {
			res, err := run(4_000_000, fmt.Sprintf("repeat-%d", i))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 1
			}
			rep.Repeat = append(rep.Repeat, res.Capacity)
		}
	}
	if !*noPeer {
		mtx := *peer
		if mtx == "" {
			if p := filepath.Join(filepath.Dir(bin), "mediamtx"); fileExists(p) {
				mtx = p
			}
		}
		progress("side by side at 4 Mbit/s with %s", map[bool]string{true: mtx, false: "no peer (no bin/mediamtx)"}[mtx != ""])
		warm, window := 6*time.Second, 10*time.Second
		if *full {
			warm, window = 10*time.Second, 20*time.Second
		}
		pr, err := bench.Peer(ctx, bench.PeerConfig{Bin: bin, MediaMTX: mtx, Dir: filepath.Join(work, "peer"), Bitrate: 4_000_000,
			Counts: []int{10, 50}, Warm: warm, Window: window, Progress: progress})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		rep.Peer = pr
	}
	fmt.Println()
	if err := bench.WriteTable(os.Stdout, rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	f, err := os.Create(*report)
	if err == nil {
		err = bench.WriteJSON(f, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nreport written to %s\n", *report)
	return 0
}
