package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/chaos/check"
	"github.com/understudy-nvr/understudy/chaos/harness"
)

func init() {
	register("chaos", "run chaos scenarios against real nodes and check every frame (run, list)", runChaos)
}

func runChaos(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: understudy chaos run --scenario NAME|all [--seed S] [--nodes N] [--cameras M] [--replicas R] [--dir DIR] [--report FILE]\n       understudy chaos list")
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "list":
		for _, n := range harness.Names(true) {
			sc := harness.Scenarios[n]
			long := ""
			if sc.Long {
				long = " (long)"
			}
			fmt.Printf("%-24s %s%s\n", n, sc.Summary, long)
		}
		return 0
	case "run":
		return runChaosRun(args[1:])
	}
	fmt.Fprintf(os.Stderr, "chaos: unknown subcommand %q: want run or list\n", args[0])
	return 2
}

// chaosReport is one scenario's entry of chaos-report.json. The cluster
// fields (under-replication, backfill) are 0 for a single node.
type chaosReport struct {
	Scenario            string  `json:"scenario"`
	Seed                uint64  `json:"seed"`
	FramesSent          int     `json:"frames_sent"`
	FramesLost          int     `json:"frames_lost"`
	Duplicates          int     `json:"duplicates"`
	SecondsLost         float64 `json:"seconds_lost"`
	MaxUnderReplicatedS float64 `json:"max_under_replicated_s"`
	BackfillBytes       int64   `json:"backfill_bytes"`
	TimeToWholeS        float64 `json:"time_to_whole_s"`
	Pass                bool    `json:"pass"`
	// Nodes, Replicas and Failures (the cluster checks that failed, in
	// words) say more than the fields.
	Nodes    int      `json:"nodes,omitempty"`
	Replicas int      `json:"replicas,omitempty"`
	Failures []string `json:"failures,omitempty"`
	// Schedule is what the script drew from the seed and did: the same
	// seed gives the same schedule.
	Schedule []string `json:"schedule,omitempty"`
}

func runChaosRun(args []string) int {
	fs := flag.NewFlagSet("chaos run", flag.ContinueOnError)
	name := fs.String("scenario", "", "scenario name (understudy chaos list), or all")
	seed := fs.Uint64("seed", 0, "seed of the scenario's random choices (0: from the clock); a failure replays from its seed")
	nodes := fs.Int("nodes", 0, "nodes (0: the scenario's)")
	cameras := fs.Int("cameras", 0, "simulated cameras (0: the scenario's)")
	replicas := fs.Int("replicas", 0, "copies of each stream in a cluster (0: the scenario's)")
	dir := fs.String("dir", "", "work directory: data, logs and send logs are kept there (default: a temporary directory, removed after a pass)")
	report := fs.String("report", "chaos-report.json", "write the JSON report here (empty: none)")
	verbose := fs.Bool("v", false, "log what the harness does")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	var names []string
	switch {
	case *name == "all":
		names = harness.Names(true)
	case harness.Scenarios[*name].Script != nil:
		names = []string{*name}
	default:
		fmt.Fprintf(os.Stderr, "chaos run: --scenario %q: want one of %s, or all\n", *name, strings.Join(harness.Names(true), ", "))
		return 2
	}
	if *nodes < 0 || *cameras < 0 || *replicas < 0 {
		fmt.Fprintln(os.Stderr, "chaos run: --nodes, --cameras and --replicas must not be negative")
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	bin, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos run:", err)
		return 1
	}
	work, keep := *dir, *dir != ""
	if work == "" {
		if work, err = os.MkdirTemp("", "understudy-chaos-"); err != nil {
			fmt.Fprintln(os.Stderr, "chaos run:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(string, ...any) {}
	if *verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+f+"\n", a...) }
	}
	var out []chaosReport
	pass := true
	for _, n := range names {
		sc := harness.Scenarios[n]
		if sc.Faults != "" && chaosFaults == nil {
			fmt.Printf("== %s: skipped: its nodes need a build with the chaosfaults tag (go build -tags pebblegozstd,chaosfaults ./cmd/understudy)\n\n", n)
			continue
		}
		fmt.Printf("== %s (seed %d): %s\n", n, *seed, sc.Summary)
		res, err := harness.RunScenario(ctx, sc, harness.RunOptions{Bin: bin, Dir: filepath.Join(work, n), Seed: *seed,
			Nodes: *nodes, Cameras: *cameras, Replicas: *replicas, Logf: logf})
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos run: %s: %v (files in %s)\n", n, err, filepath.Join(work, n))
			keep, pass = true, false
			out = append(out, chaosReport{Scenario: n, Seed: *seed})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		check.WriteTable(os.Stdout, append(res.Reports, res.Own...))
		sent, lost, dups, secs := res.Totals()
		verdict := "PASS"
		if !res.Pass {
			verdict, keep, pass = "FAIL", true, false
		}
		for _, f := range res.Failures {
			fmt.Printf("%s: FAIL: %s\n", n, f)
		}
		if len(res.Schedule) > 0 {
			fmt.Printf("%s: schedule of seed %d: %s\n", n, *seed, strings.Join(res.Schedule, "; "))
		}
		if !res.Pass {
			fmt.Printf("%s: replay: understudy chaos run --scenario %s --seed %d\n", n, n, *seed)
		}
		cluster := ""
		if res.Nodes > 1 {
			cluster = fmt.Sprintf("; %d nodes, R=%d: under-replicated at most %.1f s, %d bytes backfilled, home archives whole %.1f s after the episode",
				res.Nodes, res.Replicas, res.MaxUnderReplicated.Seconds(), res.BackfillBytes, res.TimeToWhole.Seconds())
		}
		fmt.Printf("%s: %s in %v: %d frames sent, %d lost, %d duplicates; no recorder alive %v%s\n\n", n, verdict,
			res.Took.Round(time.Second), sent, lost, dups, formatWindows(res.Down), cluster)
		out = append(out, chaosReport{Scenario: n, Seed: *seed, FramesSent: sent, FramesLost: lost, Duplicates: dups,
			SecondsLost: secs, MaxUnderReplicatedS: res.MaxUnderReplicated.Seconds(), BackfillBytes: res.BackfillBytes,
			TimeToWholeS: res.TimeToWhole.Seconds(), Pass: res.Pass, Nodes: res.Nodes, Replicas: res.Replicas, Failures: res.Failures, Schedule: res.Schedule})
	}
	if *report != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(*report, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos run:", err)
			return 1
		}
	}
	if keep {
		fmt.Fprintf(os.Stderr, "chaos run: files kept in %s\n", work)
	} else {
		os.RemoveAll(work)
	}
	if !pass {
		return 1
	}
	return 0
}

// formatWindows prints windows as 15:04:05.000-15:04:05.000 (3.1 s).
func formatWindows(ws []check.Interval) string {
	if len(ws) == 0 {
		return "never"
	}
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s-%s (%.1f s)", w.Start.UTC().Format("15:04:05.000"), w.End.UTC().Format("15:04:05.000"), w.End.Sub(w.Start).Seconds())
	}
	return strings.Join(parts, ", ")
}
