package harness

import (
	"bytes"
	"context"
	"os"
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

// TestChaosLong runs every long scenario (make chaos: CHAOS_LONG=1).
func TestChaosLong(t *testing.T) {
	if os.Getenv("CHAOS_LONG") == "" {
		t.Skip("long scenarios: CHAOS_LONG=1 (make chaos)")
	}
	for _, name := range Names(true) {
		sc := Scenarios[name]
		if !sc.Long {
			continue
		}
		t.Run(name, func(t *testing.T) {
			res, err := RunScenario(context.Background(), sc, RunOptions{Bin: bin, Dir: t.TempDir(), Seed: uint64(time.Now().UnixNano()), Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			check.WriteTable(&b, res.Reports)
			t.Logf("seed %d, down %v, took %v\n%s", res.Seed, res.Down, res.Took.Round(time.Millisecond), b.String())
			if !res.Pass {
				t.Errorf("%s failed (seed %d)", name, res.Seed)
			}
		})
	}
}
