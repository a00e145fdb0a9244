package dryrun

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy-nvr/understudy/placement"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readTopology(t *testing.T, path string) []placement.Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ns, err := ParseTopology(f)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// zeroTimes clears the wall-clock figures, the only ones that vary.
func zeroTimes(r *Report) {
	r.ElapsedMS = 0
	for i := range r.Scenarios {
		r.Scenarios[i].ElapsedMS = 0
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestReportGolden(t *testing.T) {
	ns := readTopology(t, "../../examples/topology.yaml")
	add, err := ParseNodeSpec("node-13:zone=z1/rack=r5/host=h13:2")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		streams []placement.Stream
		opts    Options
	}{
		{"generated", GenerateStreams(1200, 3), Options{Fail: []string{"node-03"}, Add: []placement.Node{add}, Drain: []string{"node-07"}}},
		{"csv", readStreams(t, "../../examples/streams.csv"), Options{Fail: []string{"node-01", "node-08"}}},
		{"nocap", GenerateStreams(1200, 2), Options{Config: placement.Config{NoLoadCap: true}, Fail: []string{"node-05"}}},
		// A branch scope of two nodes (rack r5): its preferred R=3 stream
		// takes one node nearest outside (zone z1), its strict ones fewer
		// copies; the failure of a branch node shows the fallback grow.
		{"scoped", readStreams(t, "testdata/scoped.csv"), Options{Fail: []string{"node-12"}}},
	}
	for _, c := range cases {
		rep, err := Run(ns, c.streams, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		zeroTimes(rep)
		var tb, jb bytes.Buffer
		if err := WriteTable(&tb, rep); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&jb, rep); err != nil {
			t.Fatal(err)
		}
		golden(t, c.name+".txt", tb.Bytes())
		golden(t, c.name+".json", jb.Bytes())
	}
}

func readStreams(t *testing.T, path string) []placement.Stream {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ss, err := ParseStreams(f)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

const goodTopology = `nodes:
  - id: a
    domain: zone=z0/rack=r0/host=h0
    weight: 1
  - id: b
    domain: zone=z0/rack=r1/host=h1
    weight: 2
    state: draining
`

func TestParseTopology(t *testing.T) {
	ns, err := ParseTopology(strings.NewReader(goodTopology))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].State != placement.Active || ns[1].State != placement.Draining || ns[1].Weight != 2 ||
		ns[1].Domain.String() != "zone=z0/rack=r1/host=h1" {
		t.Fatalf("parsed %+v", ns)
	}
	bad := []struct{ name, yaml, want string }{
		{"unknown node field", strings.Replace(goodTopology, "weight: 2", "weight: 2\n    color: red", 1), `line 8: unknown field "color"`},
		{"unknown top field", goodTopology + "extra: 1\n", "field extra not found"},
		{"duplicate id", strings.Replace(goodTopology, "id: b", "id: a", 1), `line 5: node "a": duplicate id (first at line 2)`},
		{"zero weight", strings.Replace(goodTopology, "weight: 1", "weight: 0", 1), `line 2: node "a": bad weight: 0`},
		{"negative weight", strings.Replace(goodTopology, "weight: 2", "weight: -3", 1), `line 5: node "b": bad weight: -3`},
		{"missing weight", strings.Replace(goodTopology, "    weight: 1\n", "", 1), `line 2: node "a" has no weight`},
		{"float weight", strings.Replace(goodTopology, "weight: 1", "weight: 1.5", 1), `line 4: weight "1.5" is not an integer`},
		{"malformed domain", strings.Replace(goodTopology, "rack=r1", "rack", 1), `line 5: node "b": malformed domain`},
		{"tiers differ", strings.Replace(goodTopology, "zone=z0/rack=r1/host=h1", "zone=z0/host=h1", 1), `line 5: node "b": domain tiers zone/host differ`},
		{"bad state", strings.Replace(goodTopology, "draining", "sleeping", 1), `line 5: node "b": bad state`},
		{"no id", strings.Replace(goodTopology, "id: a", "id: \"\"", 1), "line 2: node without id"},
		{"empty", "", "empty file"},
		{"no nodes", "nodes: []\n", "no nodes"},
		{"not a mapping", "nodes:\n  - a\n", "line 2: a node must be a mapping"},
		{"two documents", goodTopology + "---\nnodes: []\n", "more than one YAML document"},
	}
	for _, c := range bad {
		_, err := ParseTopology(strings.NewReader(c.yaml))
		if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrBadInput containing %q", c.name, err, c.want)
		}
	}
}

func TestParseStreams(t *testing.T) {
	ss, err := ParseStreams(strings.NewReader("id,weight,replicas\ncam-1,4,3\ncam-2,1,2\n"))
	if err != nil || len(ss) != 2 || ss[0] != (placement.Stream{ID: "cam-1", Weight: 4, Replicas: 3}) {
		t.Fatalf("parsed %+v, %v", ss, err)
	}
	ss, err = ParseStreams(strings.NewReader("id,weight,replicas,scope,mode\na,1,2,zone=hq,strict\nb,1,2,zone=hq,\nc,1,2,,\n"))
	if err != nil || len(ss) != 3 || ss[0] != (placement.Stream{ID: "a", Weight: 1, Replicas: 2, Scope: "zone=hq", Strict: true}) ||
		ss[1].Strict || ss[1].Scope != "zone=hq" || ss[2].Scope != "" {
		t.Fatalf("parsed %+v, %v", ss, err)
	}
	bad := []struct{ name, csv, want string }{
		{"header", "id,replicas,weight\na,1,1\n", "line 1: header"},
		{"duplicate", "id,weight,replicas\na,1,1\nb,1,1\na,2,2\n", `line 4: stream "a": duplicate id (first at line 2)`},
		{"zero weight", "id,weight,replicas\na,0,1\n", `line 2: stream "a": bad weight`},
		{"negative weight", "id,weight,replicas\na,-1,1\n", `line 2: stream "a": bad weight`},
		{"weight not int", "id,weight,replicas\na,x,1\n", `line 2: stream "a": weight "x"`},
		{"zero replicas", "id,weight,replicas\na,1,0\n", `line 2: stream "a": bad replica count`},
		{"fields", "id,weight,replicas\na,1\n", "wrong number of fields"},
		{"scope fields", "id,weight,replicas,scope\na,1,1\n", "wrong number of fields"},
		{"bad scope", "id,weight,replicas,scope\na,1,1,zone\n", `line 2: stream "a": bad scope`},
		{"bad mode", "id,weight,replicas,scope,mode\na,1,1,zone=a,loose\n", `mode "loose"`},
		{"strict no scope", "id,weight,replicas,scope,mode\na,1,1,,strict\n", "strict without a scope"},
		{"extra column", "id,weight,replicas,scope,mode,x\na,1,1,,,\n", "line 1: header"},
		{"empty", "", "empty file"},
		{"no streams", "id,weight,replicas\n", "no streams"},
	}
	for _, c := range bad {
		_, err := ParseStreams(strings.NewReader(c.csv))
		if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrBadInput containing %q", c.name, err, c.want)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	ns := readTopology(t, "../../examples/topology.yaml")
	cases := []struct {
		name string
		ss   []placement.Stream
		opts Options
		want string
	}{
		{"R above nodes", GenerateStreams(3, 13), Options{}, `stream "stream-000001": 13 replicas but only 12 nodes`},
		{"unknown fail", GenerateStreams(3, 2), Options{Fail: []string{"zz"}}, `node "zz" is not in the topology`},
		{"add existing", GenerateStreams(3, 2), Options{Add: []placement.Node{ns[0]}}, `node "node-01" to add is already`},
		{"unknown level", GenerateStreams(3, 2), Options{Config: placement.Config{Level: "room"}}, `level "room"`},
		{"scope not a prefix", []placement.Stream{{ID: "a", Weight: 1, Replicas: 1, Scope: "rack=r1"}}, Options{}, `bad scope`},
	}
	for _, c := range cases {
		_, err := Run(ns, c.ss, c.opts)
		if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrBadInput containing %q", c.name, err, c.want)
		}
	}
	for _, spec := range []string{"x", "x:zone=a", "x:zone=a:w", "x:zone:1", "x:zone=a:0", ":zone=a:1"} {
		if _, err := ParseNodeSpec(spec); !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseNodeSpec(%q) = %v, want ErrBadInput", spec, err)
		}
	}
}

// FuzzParseTopology: the parser never panics, and what it accepts places.
func FuzzParseTopology(f *testing.F) {
	f.Add(goodTopology)
	if b, err := os.ReadFile("../../examples/topology.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add("nodes:\n  - {id: x, domain: a=b, weight: 1}\n")
	f.Add("nodes: [{id: x, domain: 'a=b/c=d', weight: 9, state: saturated}, {id: y, domain: a=c/c=e, weight: 1}]")
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := ParseTopology(strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error without ErrBadInput: %v", err)
			}
			return
		}
		if _, err := placement.Place(ns, GenerateStreams(20, 2), placement.Config{Level: "node"}); err != nil {
			t.Fatalf("accepted topology does not place: %v", err)
		}
	})
}

// topo1000 is the benchmark topology as YAML: 4 zones × 10 racks × 25
// hosts, weights 1, 2 and 4 in turn.
func topo1000() []byte {
	var b bytes.Buffer
	b.WriteString("# 1,000 nodes: 4 zones x 10 racks x 25 hosts (generated by TestTopo1000, go test -update).\nnodes:\n")
	i := 0
	for z := 0; z < 4; z++ {
		for r := 0; r < 10; r++ {
			for h := 0; h < 25; h++ {
				fmt.Fprintf(&b, "  - id: node-%04d\n    domain: zone=z%d/rack=r%02d/host=h%04d\n    weight: %d\n    state: active\n",
					i, z, z*10+r, i, []int{1, 2, 4}[i%3])
				i++
			}
		}
	}
	return b.Bytes()
}

// TestTopo1000 keeps testdata/topo-1000.yaml, the demo topology of
// `understudy placement`, generated and parseable.
func TestTopo1000(t *testing.T) {
	data := topo1000()
	golden(t, "topo-1000.yaml", data)
	ns, err := ParseTopology(bytes.NewReader(data))
	if err != nil || len(ns) != 1000 {
		t.Fatalf("topo-1000.yaml: %d nodes, %v", len(ns), err)
	}
}
