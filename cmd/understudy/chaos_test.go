package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestChaosCommandErrors: bad use of `understudy chaos` is exit code 2
// with a message naming what is wrong; list names the scenarios.
func TestChaosCommandErrors(t *testing.T) {
	bin := understudyBinary(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"chaos"}, "usage: understudy chaos run"},
		{[]string{"chaos", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"chaos", "run"}, `--scenario "": want one of`},
		{[]string{"chaos", "run", "--scenario", "nope"}, "kill-restart"},
		{[]string{"chaos", "run", "--scenario", "cluster-home-kill", "--replicas", "-1"}, "must not be negative"},
		{[]string{"chaos", "run", "--scenario", "kill-restart", "--cameras", "-1"}, "must not be negative"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v\n%s\nwant exit 2 and %q", tc.args, err, out, tc.want)
		}
	}
	out, err := exec.Command(bin, "chaos", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kill-restart") || !strings.Contains(string(out), "(long)") {
		t.Errorf("chaos list: %v\n%s", err, out)
	}
}
