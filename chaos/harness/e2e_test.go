package harness

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/check"
)

// TestChaosKillRestart is the short suite's end-to-end run: one real node
// records two simulated cameras for 15 s, is killed with SIGKILL,
// restarted 3 s later and records 10 s more; both streams are exported
// over /v1/export and frame-checked. The frames of the downtime are "no
// recorder" (or "starting", before the restarted node's first keyframe),
// those of the part being written at the kill "in flight" (at most
// CrashTail), none is lost while the node was alive, none is repeated.
func TestChaosKillRestart(t *testing.T) {
	start := time.Now()
	res, err := RunScenario(context.Background(), Scenarios["kill-restart"], RunOptions{Bin: bin, Dir: t.TempDir(), Seed: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	check.WriteTable(&b, res.Reports)
	t.Logf("down %v, took %v\n%s", res.Down, time.Since(start).Round(time.Millisecond), b.String())
	wantSchedule(t, res, "lead-in 13s", "kill -9 n1", "down 3.7s")
	if len(res.Down) != 1 {
		t.Fatalf("down windows %v, want the one of the kill", res.Down)
	}
	downFrames := int(res.Down[0].End.Sub(res.Down[0].Start).Seconds() * 25)
	for i, rep := range res.Reports {
		if !rep.Pass || rep.Lost != 0 || rep.Duplicates != 0 {
			t.Errorf("%s: lost %d, duplicates %d, problems %v", rep.Stream, rep.Lost, rep.Duplicates, rep.Problems)
		}
		if rep.NoRecorder < downFrames-10 || rep.NoRecorder > downFrames+1 {
			t.Errorf("%s: %d frames of no recorder over a %v downtime (%d frames)", rep.Stream, rep.NoRecorder,
				res.Down[0].End.Sub(res.Down[0].Start), downFrames)
		}
		if rep.InFlight > int(CrashTail.Seconds()*25) {
			t.Errorf("%s: %d frames in flight at the kill", rep.Stream, rep.InFlight)
		}
		if rep.Present < 20*25 {
			t.Errorf("%s: only %d frames present over 28 s", rep.Stream, rep.Present)
		}
		// Not told of the downtime, the checker calls it lost.
		in := res.Inputs[i]
		o := in.Options
		o.Down, o.InFlight = nil, nil
		blind, err := check.Check(in.Frames, in.Log, o)
		if err != nil {
			t.Fatal(err)
		}
		if blind.Pass || blind.Lost < rep.NoRecorder {
			t.Errorf("%s: without the down window, lost %d (pass %v), want >= %d", rep.Stream, blind.Lost, blind.Pass, rep.NoRecorder)
		}
	}
}

// TestChaosLong runs every long scenario (make chaos: CHAOS_LONG=1),
// side by side as many at a time as go test's -parallel (each run uses
// little CPU: about 13 % of this 2-core machine for 3 nodes and 3
// cameras), each on loopback addresses of its own (Subnet). The seed is
// CHAOS_SEED if set (to replay a failure), else drawn from the clock.
func TestChaosLong(t *testing.T) {
	if os.Getenv("CHAOS_LONG") == "" {
		t.Skip("long scenarios: CHAOS_LONG=1 (make chaos)")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil || seed == 0 {
			t.Fatalf("CHAOS_SEED=%q: want a positive integer", v)
		}
	}
	t.Logf("seed %d (replay: CHAOS_SEED=%d make chaos, or understudy chaos run --scenario NAME --seed %d)", seed, seed, seed)
	fbin, err := BuildFaultBinary(context.Background(), "../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	subnet := 0
	for _, name := range Names(true) {
		sc := Scenarios[name]
		if !sc.Long {
			continue
		}
		subnet++
		subnet := subnet // each run its own: the subtests resume after the loop
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if sc.Netns && os.Geteuid() != 0 {
				t.Skip("network namespaces need root")
			}
			nb := bin
			if sc.Faults != "" {
				nb = fbin
			}
			// The files of a failed run are kept: the logs and data
			// directories are the evidence.
			dir, err := os.MkdirTemp("", "chaos-"+name+"-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("files kept in %s", dir)
				} else {
					os.RemoveAll(dir)
				}
			})
			res, err := RunScenario(context.Background(), sc, RunOptions{Bin: nb, Dir: dir, Seed: seed, Subnet: subnet, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			check.WriteTable(&b, append(res.Reports, res.Own...))
			t.Logf("seed %d, schedule %q, down %v, took %v\n%s", res.Seed, res.Schedule, res.Down, res.Took.Round(time.Millisecond), b.String())
			if res.Nodes > 1 {
				sent, lost, dups, _ := res.Totals()
				t.Logf("%d nodes, R=%d: %d frames sent, %d lost, %d duplicates, under-replicated at most %v, %d bytes backfilled, whole %v after the episode",
					res.Nodes, res.Replicas, sent, lost, dups, res.MaxUnderReplicated.Round(time.Millisecond), res.BackfillBytes, res.TimeToWhole.Round(time.Millisecond))
			}
			for _, f := range res.Failures {
				t.Errorf("%s", f)
			}
			if !res.Pass {
				logUnexplained(t, res)
				t.Errorf("%s failed (seed %d)", name, res.Seed)
			}
		})
	}
}

// TestChaosClusterHomeKill is the short suite's multi-node run: three real
// nodes gossip-joined record three cameras with R=2; the home of the most
// streams is killed with SIGKILL and restarted 15 s later. Every stream is
// exported through every node and frame-checked (none lost, none twice:
// a replica recorded through the outage), ends with two live recorders,
// and its home's own archive is whole again after backfill; fsck is clean
// on every node.
func TestChaosClusterHomeKill(t *testing.T) {
	if raceEnabled {
		t.Skip("the nodes are not built with -race; the run without it covers this (make test runs both)")
	}
	res, err := RunScenario(context.Background(), Scenarios["cluster-home-kill"], RunOptions{Bin: bin, Dir: t.TempDir(), Seed: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	check.WriteTable(&b, append(res.Reports, res.Own...))
	sent, lost, dups, _ := res.Totals()
	t.Logf("took %v: %d frames sent, %d lost, %d duplicates, under-replicated at most %v, %d bytes backfilled, whole %v after the episode\n%s",
		res.Took.Round(time.Millisecond), sent, lost, dups, res.MaxUnderReplicated, res.BackfillBytes, res.TimeToWhole.Round(time.Millisecond), b.String())
	// The victim is a tie of the placement (one home each) broken by the
	// seed: it changes if placement does.
	wantSchedule(t, res, "victim n2", "lead-in 9.9s", "kill -9 n2", "down 17.1s")
	for _, f := range res.Failures {
		t.Errorf("%s", f)
	}
	if !res.Pass || lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicates %d, pass %v", lost, dups, res.Pass)
		logUnexplained(t, res)
	}
	if len(res.Down) != 0 {
		t.Errorf("down windows %v: two nodes were always alive", res.Down)
	}
	if len(res.Reports) != 3*3 || len(res.Own) != 3 {
		t.Errorf("%d reports and %d of own copies, want 3 streams through 3 nodes and 3 homes", len(res.Reports), len(res.Own))
	}
	if res.BackfillBytes == 0 {
		t.Error("nothing backfilled: the killed home's outage was not repaired")
	}
	if res.MaxUnderReplicated < 3*time.Second {
		t.Errorf("under-replicated at most %v after a kill -9: the sampler does not see the kill", res.MaxUnderReplicated)
	}
	for _, rep := range res.Reports {
		if rep.Present < 30*25 {
			t.Errorf("%s: only %d frames present", rep.Stream, rep.Present)
		}
	}
}

// logUnexplained logs, for reports with frames the send log does not
// know, those frames and the send log lines around them.
func logUnexplained(t *testing.T, res *Result) {
	for i, rep := range res.Reports {
		if rep.Unknown == 0 && rep.Phantom == 0 {
			continue
		}
		in := res.Inputs[i]
		known := map[uint64]bool{}
		for _, e := range in.Log {
			if e.IsRange() {
				for n := e.First; n <= e.Last; n++ {
					known[n] = true
				}
			}
		}
		for k, f := range in.Frames {
			if f.Stamped && !known[f.Stamp.Frame] {
				t.Logf("%s: sample %d: frame %d (%s, dts %v) not in the send log", rep.Stream, k, f.Stamp.Frame,
					f.Stamp.Time.UTC().Format("15:04:05.000"), f.DTS)
				for _, e := range in.Log {
					if e.IsRange() && e.Last+3 >= f.Stamp.Frame && e.First <= f.Stamp.Frame+3 {
						t.Logf("  log: %+v", e)
					}
				}
			}
		}
	}
}

// TestChaosCheckersFailWithoutBackfill shows the cluster checkers fail
// when the system breaks its promise: the home-kill scenario on nodes
// built with the chaosfaults tag and told to run no backfill. The killed
// home's archive keeps the hole of its outage and the suite says so,
// naming the stream, the node and the interval; the exports stay whole
// (the replicas recorded through the outage), as they should.
func TestChaosCheckersFailWithoutBackfill(t *testing.T) {
	if raceEnabled {
		t.Skip("the nodes are not built with -race; the run without it covers this (make test runs both)")
	}
	fbin, err := BuildFaultBinary(context.Background(), "../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunScenario(context.Background(), Scenarios["cluster-home-kill"], RunOptions{Bin: fbin, Dir: t.TempDir(), Seed: 1,
		NodeEnv: []string{"UNDERSTUDY_CHAOS_FAULTS=no-backfill"}, WholeTimeout: 20 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	sent, lost, dups, _ := res.Totals()
	t.Logf("without backfill: pass %v, %d frames sent, %d lost, %d duplicates, %d bytes backfilled, failures %q",
		res.Pass, sent, lost, dups, res.BackfillBytes, res.Failures)
	if res.Pass {
		t.Fatal("the suite passed a cluster that never backfills")
	}
	holes := 0
	for _, f := range res.Failures {
		if strings.HasPrefix(f, "backfill: ") && strings.Contains(f, "archive hole") {
			holes++
		}
	}
	if holes == 0 || res.TimeToWhole >= 0 {
		t.Errorf("no archive hole reported (time to whole %v): %q", res.TimeToWhole, res.Failures)
	}
	if res.BackfillBytes != 0 {
		t.Errorf("%d bytes backfilled with backfill off", res.BackfillBytes)
	}
	if lost != 0 || dups != 0 {
		t.Errorf("exports lost %d, %d twice: the replicas recorded through the outage", lost, dups)
	}
}

// TestChaosCheckersFailWithoutMakeBeforeBreak shows the frame checker
// fails when a handoff breaks before it makes: the drain scenario (R=1,
// so the one copy of each stream moves) on nodes built with the
// chaosfaults tag and told to stop a stream at once when its role moves
// away. The new recorder waits for a keyframe, and the frames sent
// meanwhile, while every node was alive, are lost in every export.
func TestChaosCheckersFailWithoutMakeBeforeBreak(t *testing.T) {
	if raceEnabled {
		t.Skip("the nodes are not built with -race; the run without it covers this (make test runs both)")
	}
	fbin, err := BuildFaultBinary(context.Background(), "../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunScenario(context.Background(), Scenarios["cluster-drain"], RunOptions{Bin: fbin, Dir: t.TempDir(), Seed: 1,
		NodeEnv: []string{"UNDERSTUDY_CHAOS_FAULTS=no-make-before-break"}, WholeTimeout: 30 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	check.WriteTable(&b, res.Reports)
	sent, lost, dups, _ := res.Totals()
	t.Logf("without make-before-break: pass %v, %d frames sent, %d lost, %d duplicates, failures %q\n%s",
		res.Pass, sent, lost, dups, res.Failures, b.String())
	if res.Pass {
		t.Fatal("the suite passed a cluster that breaks before it makes")
	}
	if len(res.Down) != 0 {
		t.Errorf("down windows %v: no node was stopped", res.Down)
	}
	// Every export of a moved stream misses the frames of its handoffs:
	// at least a few frames each time (the new recorder's RTSP set-up
	// and its wait for a keyframe, GOP 2 s).
	moved := 0
	for _, rep := range res.Reports {
		if rep.Lost > 0 {
			moved++
		}
	}
	if moved == 0 || lost < 10 {
		t.Errorf("%d exports lost frames, %d in all: the checker did not see the handoff's hole", moved, lost)
	}
}

// TestChaosCheckersFailDroppingParts shows the frame checks fail on a
// node that silently loses one part in a hundred (each writer's 20th,
// 120th, ...: written to no file, yet indexed and checksummed as if it
// were): the home-kill scenario on nodes built with the chaosfaults tag.
// The index and the checksums agree with the files, so fsck is clean and
// only the decoded frames show it: every home's own copy misses a part's
// frames. (Backfill may refuse a copied segment whose media ends short of
// its index entry, where the dropped part was its last: that hole is
// reported too.)
func TestChaosCheckersFailDroppingParts(t *testing.T) {
	if raceEnabled {
		t.Skip("the nodes are not built with -race; the run without it covers this (make test runs both)")
	}
	fbin, err := BuildFaultBinary(context.Background(), "../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunScenario(context.Background(), Scenarios["cluster-home-kill"], RunOptions{Bin: fbin, Dir: t.TempDir(), Seed: 1,
		NodeEnv: []string{"UNDERSTUDY_CHAOS_FAULTS=drop-parts"}, WholeTimeout: 20 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	check.WriteTable(&b, append(res.Reports, res.Own...))
	sent, lost, dups, _ := res.Totals()
	t.Logf("dropping parts: pass %v, %d frames sent, %d lost in the exports, %d duplicates, failures %q\n%s",
		res.Pass, sent, lost, dups, res.Failures, b.String())
	if res.Pass {
		t.Fatal("the suite passed a cluster that silently drops parts")
	}
	own := 0
	for _, rep := range res.Own {
		if rep.Lost > 0 {
			own++
		}
	}
	if own == 0 {
		t.Errorf("no home's own copy lost frames: %q", res.Failures)
	}
	for _, f := range res.Failures {
		if strings.HasPrefix(f, "fsck ") {
			t.Errorf("the drop is silent to fsck, yet %q", f)
		}
	}
}

// wantSchedule: a failure replays from its seed. The schedule a scenario
// draws from seed 1 is the one it drew when this test was written: it
// depends on nothing but the seed (and, for the victim of a cluster
// scenario, the placement), not on how the run went.
func wantSchedule(t *testing.T, res *Result, want ...string) {
	t.Helper()
	if !slices.Equal(res.Schedule, want) {
		t.Errorf("seed %d drew the schedule %q, want %q: a failure would not replay from its seed", res.Seed, res.Schedule, want)
	}
}
