package dryrun

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/understudy-nvr/understudy/placement"
)

// ErrBadInput is wrapped by every error about the content of the input
// (as opposed to failing to read it): the tool exits with code 2.
var ErrBadInput = errors.New("bad input")

// maxInput bounds what the parsers read (64 MiB).
const maxInput = 64 << 20

type topologyFile struct {
	Nodes []nodeSpec `yaml:"nodes"`
}

// nodeSpec is one node of the topology file.
type nodeSpec struct {
	ID     string `yaml:"id"`
	Domain string `yaml:"domain"`
	Weight int64  `yaml:"weight"`
	State  string `yaml:"state"`
	line   int
}

var nodeFields = []string{"id", "domain", "weight", "state"}

// UnmarshalYAML decodes one node strictly (yaml.v3 does not apply
// KnownFields below a custom unmarshaler) and remembers its line.
func (n *nodeSpec) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a node must be a mapping with %s", v.Line, strings.Join(nodeFields, ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k := v.Content[i]
		if !contains(nodeFields, k.Value) {
			return fmt.Errorf("line %d: unknown field %q in node (want %s)", k.Line, k.Value, strings.Join(nodeFields, ", "))
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: field %q repeated", k.Line, k.Value)
		}
		if val := v.Content[i+1]; k.Value == "weight" && val.ShortTag() != "!!int" {
			return fmt.Errorf("line %d: weight %q is not an integer", val.Line, val.Value)
		}
		seen[k.Value] = true
	}
	type plain nodeSpec
	var p plain
	if err := v.Decode(&p); err != nil {
		return fmt.Errorf("line %d: %v", v.Line, err)
	}
	*n = nodeSpec(p)
	n.line = v.Line
	if !seen["weight"] {
		return fmt.Errorf("line %d: node %q has no weight", v.Line, n.ID)
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ParseTopology reads a topology file:
//
//	nodes:
//	  - id: node-0001
//	    domain: zone=z0/rack=r3/host=h17
//	    weight: 2
//	    state: active   # or draining, saturated; default active
//
// Every node has the same tier keys, in the same order.
func ParseTopology(r io.Reader) ([]placement.Node, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%w: topology larger than %d bytes", ErrBadInput, maxInput)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var f topologyFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: topology: empty file", ErrBadInput)
		}
		return nil, fmt.Errorf("%w: topology: %v", ErrBadInput, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%w: topology: line %d: more than one YAML document", ErrBadInput, extra.Line)
	}
	if len(f.Nodes) == 0 {
		return nil, fmt.Errorf("%w: topology: no nodes", ErrBadInput)
	}
	nodes := make([]placement.Node, 0, len(f.Nodes))
	first := map[string]int{}
	var tiers string
	for _, s := range f.Nodes {
		n, err := s.node()
		if err != nil {
			return nil, fmt.Errorf("%w: topology: line %d: %v", ErrBadInput, s.line, err)
		}
		if l, dup := first[s.ID]; dup {
			return nil, fmt.Errorf("%w: topology: line %d: node %q: duplicate id (first at line %d)", ErrBadInput, s.line, s.ID, l)
		}
		first[s.ID] = s.line
		keys := tierKeys(n.Domain)
		if tiers == "" {
			tiers = keys
		} else if keys != tiers {
			return nil, fmt.Errorf("%w: topology: line %d: node %q: domain tiers %s differ from the first node's %s",
				ErrBadInput, s.line, s.ID, keys, tiers)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func tierKeys(d placement.Domain) string {
	ks := make([]string, len(d))
	for i, t := range d {
		ks[i] = t.Key
	}
	return strings.Join(ks, "/")
}

func (s nodeSpec) node() (placement.Node, error) {
	n := placement.Node{ID: s.ID, Weight: s.Weight, State: placement.Active}
	if s.ID == "" {
		return n, errors.New("node without id")
	}
	d, err := placement.ParseDomain(s.Domain)
	if err != nil {
		return n, fmt.Errorf("node %q: %v", s.ID, err)
	}
	n.Domain = d
	if s.State != "" {
		if n.State, err = placement.ParseState(s.State); err != nil {
			return n, fmt.Errorf("node %q: %v", s.ID, err)
		}
	}
	if err := placement.ValidateNode(n); err != nil {
		return n, err
	}
	return n, nil
}

// ParseNodeSpec parses the ID:DOMAIN:WEIGHT form of --add.
func ParseNodeSpec(spec string) (placement.Node, error) {
	i, j := strings.IndexByte(spec, ':'), strings.LastIndexByte(spec, ':')
	if i < 0 || i == j {
		return placement.Node{}, fmt.Errorf("%w: %q: want ID:DOMAIN:WEIGHT", ErrBadInput, spec)
	}
	w, err := strconv.ParseInt(spec[j+1:], 10, 64)
	if err != nil {
		return placement.Node{}, fmt.Errorf("%w: %q: weight %q is not an integer", ErrBadInput, spec, spec[j+1:])
	}
	n, err := nodeSpec{ID: spec[:i], Domain: spec[i+1 : j], Weight: w}.node()
	if err != nil {
		return n, fmt.Errorf("%w: %q: %v", ErrBadInput, spec, err)
	}
	return n, nil
}

// ParseStreams reads a streams CSV file whose header is id,weight,replicas,
// optionally followed by scope (a domain prefix such as zone=hq, empty for
// none) and mode (preferred, the default, or strict).
func ParseStreams(r io.Reader) ([]placement.Stream, error) {
	cr := csv.NewReader(io.LimitReader(r, maxInput))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: streams: empty file", ErrBadInput)
		}
		return nil, fmt.Errorf("%w: streams: %v", ErrBadInput, err)
	}
	want := []string{"id", "weight", "replicas", "scope", "mode"}
	okHead := len(head) >= 3 && len(head) <= len(want)
	for i := 0; okHead && i < len(head); i++ {
		okHead = strings.TrimPrefix(head[i], "\ufeff") == want[i]
	}
	if !okHead {
		return nil, fmt.Errorf("%w: streams: line 1: header %q, want id,weight,replicas[,scope[,mode]]", ErrBadInput, strings.Join(head, ","))
	}
	fields := len(head)
	var ss []placement.Stream
	first := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%w: streams: %v", ErrBadInput, err)
		}
		if len(rec) != fields {
			return nil, fmt.Errorf("%w: streams: line %d: wrong number of fields: %d, want %d", ErrBadInput, line, len(rec), fields)
		}
		s := placement.Stream{ID: rec[0]}
		if fields > 3 {
			s.Scope = rec[3]
		}
		if fields > 4 {
			switch rec[4] {
			case "", "preferred":
			case "strict":
				s.Strict = true
			default:
				return nil, fmt.Errorf("%w: streams: line %d: stream %q: mode %q, want preferred or strict", ErrBadInput, line, rec[0], rec[4])
			}
			if s.Strict && s.Scope == "" {
				return nil, fmt.Errorf("%w: streams: line %d: stream %q: mode strict without a scope", ErrBadInput, line, rec[0])
			}
		}
		if s.Weight, err = strconv.ParseInt(rec[1], 10, 64); err != nil {
			return nil, fmt.Errorf("%w: streams: line %d: stream %q: weight %q is not an integer", ErrBadInput, line, rec[0], rec[1])
		}
		if s.Replicas, err = strconv.Atoi(rec[2]); err != nil {
			return nil, fmt.Errorf("%w: streams: line %d: stream %q: replicas %q is not an integer", ErrBadInput, line, rec[0], rec[2])
		}
		if err := placement.ValidateStream(s); err != nil {
			return nil, fmt.Errorf("%w: streams: line %d: %v", ErrBadInput, line, err)
		}
		if l, dup := first[s.ID]; dup {
			return nil, fmt.Errorf("%w: streams: line %d: stream %q: duplicate id (first at line %d)", ErrBadInput, line, s.ID, l)
		}
		first[s.ID] = line
		ss = append(ss, s)
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("%w: streams: no streams", ErrBadInput)
	}
	return ss, nil
}

// GenerateStreams makes n streams of weight 1 and r replicas, named
// stream-000001 and up.
func GenerateStreams(n, r int) []placement.Stream {
	ss := make([]placement.Stream, n)
	for i := range ss {
		ss[i] = placement.Stream{ID: fmt.Sprintf("stream-%06d", i+1), Weight: 1, Replicas: r}
	}
	return ss
}
