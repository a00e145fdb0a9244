package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
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

// benchParts are the parts of a run, in the order they run.
var benchParts = []string{"ingest", "peer", "failover", "index", "control"}

// benchSubnet is the third byte of the loopback addresses of the failover
// cluster (127.0.200.x); the index and control parts use the next two.
// The chaos suite uses 127.0.0..30.x.
const benchSubnet = 200

// parseParts reads --only: "" is every part.
func parseParts(list string) (map[string]bool, error) {
	parts := map[string]bool{}
	if strings.TrimSpace(list) == "" {
		for _, p := range benchParts {
			parts[p] = true
		}
		return parts, nil
	}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(benchParts, p) {
			return nil, fmt.Errorf("--only: unknown part %q (want %s)", p, strings.Join(benchParts, ","))
		}
		parts[p] = true
	}
	return parts, nil
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: understudy bench [--full] [--only PARTS] [--dir DIR] [--report FILE]\n\n"+
			"The short run (about 10 minutes) finds the 4 Mbit/s capacity of one node, compares it with MediaMTX, "+
			"times 5 failovers of a 3-node cluster (kill -9 of a home node), the segment index (write rate, 24 h timeline, "+
			"start-up with 100,000 segments) and the control plane (100,000 streams placed on 1,000 nodes; catalog "+
			"convergence and failure detection on 30 gossip nodes). --full adds 1 and 8 Mbit/s, repeats 4 Mbit/s three "+
			"times, and takes 20 failovers, 1,000,000 segments and 100 gossip nodes.")
		fs.PrintDefaults()
	}
	full := fs.Bool("full", false, "1, 4 and 8 Mbit/s, 4 Mbit/s three times, 20 failovers, 1,000,000 indexed segments, 100 gossip nodes")
	dir := fs.String("dir", "", "working directory for the node's data and logs (default: a temporary one, removed)")
	report := fs.String("report", "bench-report.json", "where to write the JSON report")
	maxStreams := fs.Int("max-streams", 256, "the most streams the ramp tries")
	peer := fs.String("peer", "", "the MediaMTX binary to compare with (default bin/mediamtx beside this binary, if it is there; scripts/build-mediamtx.sh builds it)")
	noPeer := fs.Bool("no-peer", false, "skip the side-by-side run")
	only := fs.String("only", "", "run only these parts, comma-separated: "+strings.Join(benchParts, ",")+" (default: all)")
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
	parts, err := parseParts(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if *noPeer {
		delete(parts, "peer")
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
	if !parts["ingest"] {
		rates = nil
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
	if *full && parts["ingest"] {
		for i := 2; i <= 3; i++ {
			res, err := run(4_000_000, fmt.Sprintf("repeat-%d", i))
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 1
			}
			rep.Repeat = append(rep.Repeat, res.Capacity)
		}
	}
	if parts["peer"] {
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
	if parts["failover"] {
		trials := 5
		if *full {
			trials = 20
		}
		fr, err := bench.Failover(ctx, bench.FailoverConfig{Bin: bin, Dir: filepath.Join(work, "failover"), Subnet: benchSubnet,
			Nodes: 3, Cameras: 3, Bitrate: 250_000, Replicas: 2, Trials: trials, Progress: progress})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: failover:", err)
			return 1
		}
		rep.Failover = fr
	}
	if parts["index"] {
		ic := bench.IndexConfig{Bin: bin, Dir: filepath.Join(work, "index"), IP: fmt.Sprintf("127.0.%d.1", benchSubnet+1),
			WriteFor: 5 * time.Second, TimelineCalls: 200, StartupSegments: 100_000, Progress: progress}
		if *full {
			ic.WriteFor, ic.TimelineCalls, ic.StartupSegments = 30*time.Second, 1000, 1_000_000
		}
		ir, err := bench.Index(ctx, ic)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: index:", err)
			return 1
		}
		rep.Index = ir
	}
	if parts["control"] {
		cc := bench.ControlConfig{Streams: 100_000, Nodes: 1_000, Replicas: 2, Runs: 3, GossipNodes: 30, Writes: 20,
			BindIP: fmt.Sprintf("127.0.%d.1", benchSubnet+2), Dir: filepath.Join(work, "control"), Progress: progress}
		if *full {
			cc.Runs, cc.GossipNodes, cc.Writes = 5, 100, 50
		}
		cr, err := bench.Control(ctx, cc)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: control:", err)
			return 1
		}
		rep.Control = cr
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
