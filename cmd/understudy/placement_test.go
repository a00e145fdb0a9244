package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPlacementExitCodes: good input exits 0, bad input 2.
func TestPlacementExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("nodes:\n  - id: a\n    domain: zone=z\n    weight: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := "../../examples/topology.yaml"
	stdout := os.Stdout
	null, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	os.Stdout = null
	defer func() { os.Stdout = stdout; null.Close() }()
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"--topology", topo, "--streams", "100", "--replicas", "3", "--fail", "node-01", "--format", "json"}, 0},
		{[]string{"--topology", topo, "--streams-file", "../../examples/streams.csv", "--drain", "node-02"}, 0},
		{[]string{"--topology", bad, "--streams", "10"}, 2},
		{[]string{"--topology", topo, "--streams", "10", "--replicas", "13"}, 2},
		{[]string{"--topology", topo, "--streams", "10", "--add", "node-99:zone=z0:1"}, 2},
		{[]string{"--topology", topo, "--streams", "10", "--fail", "nope"}, 2},
		{[]string{"--topology", topo}, 2},
		{[]string{"--topology", filepath.Join(dir, "missing.yaml"), "--streams", "10"}, 2},
		{[]string{"--bogus"}, 2},
		// Refused before generating 100 million streams (5.6 GB, 30 s).
		{[]string{"--topology", topo, "--streams", "100000000"}, 2},
		{[]string{"--topology", topo, "--streams", "10", "--fail", "node-01,node-01"}, 2},
		{[]string{"--topology", topo, "--streams", "10", "--overload", "0.5"}, 0},
		{[]string{"--topology", topo, "--streams-file", "../../placement/dryrun/testdata/scoped.csv", "--format", "json"}, 0},
		{[]string{"--topology", topo, "--streams", "10", "--overload", "-1"}, 2},
	}
	for _, c := range cases {
		if got := runPlacement(c.args); got != c.want {
			t.Errorf("understudy placement %v: exit %d, want %d", c.args, got, c.want)
		}
	}
}
