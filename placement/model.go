package placement

import (
	"errors"
	"fmt"
	"strings"
)

// State is what a node accepts.
type State uint8

const (
	// Active nodes take copies.
	Active State = iota
	// Draining nodes are leaving: they take no copies.
	Draining
	// Saturated nodes are full (disk, CPU, network): they take no copies.
	Saturated
	// Failed nodes are members known to be down that were active: they
	// take no copies, but the placement is computed as if they were
	// active and then only their copies are replaced. So a stream whose
	// home failed is homed on a surviving copy, which was recording it
	// already, every other stream keeps its copies, and the node, back,
	// gets exactly its old copies again.
	Failed
)

// String returns the name used in topology files.
func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Draining:
		return "draining"
	case Saturated:
		return "saturated"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses "active", "draining", "saturated" or "failed".
func ParseState(s string) (State, error) {
	switch s {
	case "active":
		return Active, nil
	case "draining":
		return Draining, nil
	case "saturated":
		return Saturated, nil
	case "failed":
		return Failed, nil
	}
	return 0, fmt.Errorf("%w: %q (want active, draining, saturated or failed)", ErrBadState, s)
}

// Limits on inputs, so that every load sum fits in 64 bits with room to spare.
const (
	// MaxNodeWeight is the largest node capacity weight.
	MaxNodeWeight = 1 << 20
	// MaxStreamWeight is the largest stream load weight.
	MaxStreamWeight = 1 << 24
	// MaxStreams is the largest number of streams.
	MaxStreams = 1 << 24
	// MaxReplicas is the largest replica count of a stream.
	MaxReplicas = 16
	// MaxNodes is the largest number of nodes.
	MaxNodes = 1 << 16
)

// Sentinel errors for bad input; every error returned by Place wraps one.
var (
	ErrDuplicateID = errors.New("duplicate id")
	ErrBadWeight   = errors.New("bad weight")
	ErrBadDomain   = errors.New("malformed domain")
	ErrBadState    = errors.New("bad state")
	ErrBadReplicas = errors.New("bad replica count")
	ErrBadID       = errors.New("bad id")
	ErrBadConfig   = errors.New("bad config")
	ErrUnknownNode = errors.New("unknown node")
	ErrBadScope    = errors.New("bad scope")
)

// Tier is one level of a failure-domain path, such as zone=z0.
type Tier struct {
	Key   string // e.g. "rack"
	Value string // e.g. "r3"
}

// Domain is a failure-domain path, outermost tier first:
// zone=z0/rack=r3/host=h17.
type Domain []Tier

// ParseDomain parses "key=value/key=value/...". Keys and values are
// non-empty, contain no '/' or '=', and keys are distinct.
func ParseDomain(s string) (Domain, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadDomain)
	}
	parts := strings.Split(s, "/")
	d := make(Domain, 0, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" || strings.Contains(v, "=") {
			return nil, fmt.Errorf("%w: %q: tier %q is not key=value", ErrBadDomain, s, p)
		}
		for _, t := range d {
			if t.Key == k {
				return nil, fmt.Errorf("%w: %q: tier %q repeated", ErrBadDomain, s, k)
			}
		}
		d = append(d, Tier{Key: k, Value: v})
	}
	return d, nil
}

// String formats the path as it is parsed.
func (d Domain) String() string {
	var b strings.Builder
	for i, t := range d {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(t.Key)
		b.WriteByte('=')
		b.WriteString(t.Value)
	}
	return b.String()
}

// Node is one recorder as placement sees it.
type Node struct {
	ID     string
	Domain Domain
	// Weight is the capacity weight: a node of weight 2 gets twice the load
	// of a node of weight 1. 1 ≤ Weight ≤ MaxNodeWeight.
	Weight int64
	State  State
}

// Stream is one camera stream as placement sees it.
type Stream struct {
	ID string
	// Weight is the load weight, such as the bitrate in Mbit/s.
	// 1 ≤ Weight ≤ MaxStreamWeight.
	Weight int64
	// Replicas is R, the number of copies (home included). 1 ≤ R ≤ MaxReplicas.
	Replicas int
	// Scope keeps the copies near the camera: a prefix of the
	// failure-domain path ("zone=hq", "zone=eu/rack=3"), whose keys are the
	// outermost tier keys of the nodes. The copies go only to nodes under
	// it, spread as uniquely as possible inside it. "" is the whole
	// cluster.
	Scope string
	// Strict, with a Scope that has fewer than R active nodes, places
	// only as many copies as it has nodes, never one outside. Otherwise
	// (preferred, the default) the missing copies go to the nearest
	// nodes outside the scope: those sharing the longest prefix of its
	// path (the other racks of zone=eu before other zones).
	// Placement.Scopes counts both.
	Strict bool
}

// Config tunes Place. The zero value is usable after EnsureDefaults.
type Config struct {
	// Level is the tier key whose domains the copies of one stream must not
	// share, such as "rack"; "node" asks only for distinct nodes.
	// Default "rack".
	Level string
	// Epsilon bounds the load: no node carries more than (1+Epsilon) times
	// its fair share, for copies and for homes separately. It is read to
	// one part per million. Default 0.10.
	Epsilon float64
	// NoLoadCap turns the load bound off: pure weighted rendezvous hashing,
	// whose movement on a membership change is exactly optimal.
	// Default false.
	NoLoadCap bool
	// Overload is how far past its cap, as a fraction of its fair share, a
	// node may be loaded so that copies stay unique at the tiers above
	// Level (zones, when Level is rack): Swift's overload. Copies are
	// spread over zones, then racks, then hosts; when every node of an
	// unused zone is at its cap (1+Epsilon)·fair, a copy goes to such a
	// node anyway if it is under (1+Epsilon+Overload)·fair, and otherwise
	// shares a zone with another copy (never a domain at Level while an
	// unused one has a node). 0, the default, lets the cap win; a large
	// value lets dispersion win. Only uneven topologies (a small zone)
	// need it: on balanced ones the cap never forces sharing.
	Overload float64
}

// EnsureDefaults applies the defaults documented on the fields.
func (c *Config) EnsureDefaults() {
	if c.Level == "" {
		c.Level = "rack"
	}
	if c.Epsilon == 0 {
		c.Epsilon = 0.10
	}
}

func (c *Config) validate() error {
	if c.Epsilon < 0 || c.Epsilon > 100 || c.Epsilon != c.Epsilon {
		return fmt.Errorf("%w: epsilon %v out of [0, 100]", ErrBadConfig, c.Epsilon)
	}
	if c.Overload < 0 || c.Overload > 100 || c.Overload != c.Overload {
		return fmt.Errorf("%w: overload %v out of [0, 100]", ErrBadConfig, c.Overload)
	}
	return nil
}

// epsilonPPM converts Epsilon to parts per million, the only use of floating
// point on the placement path (one multiplication and one rounding: exact
// and identical under IEEE 754 on every architecture).
func (c *Config) epsilonPPM() uint64 {
	return uint64(c.Epsilon*1e6 + 0.5)
}

// overloadPPM converts Overload to parts per million.
func (c *Config) overloadPPM() uint64 {
	return uint64(c.Overload*1e6 + 0.5)
}

func validID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s id", ErrBadID, what)
	}
	if len(id) > 256 {
		return fmt.Errorf("%w: %s id %.20q... longer than 256 bytes", ErrBadID, what, id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s id %q has a control character", ErrBadID, what, id)
		}
	}
	return nil
}

// ValidateNode checks one node on its own.
func ValidateNode(n Node) error {
	if err := validID("node", n.ID); err != nil {
		return err
	}
	if n.Weight < 1 || n.Weight > MaxNodeWeight {
		return fmt.Errorf("node %q: %w: %d (want 1..%d)", n.ID, ErrBadWeight, n.Weight, MaxNodeWeight)
	}
	if len(n.Domain) == 0 {
		return fmt.Errorf("node %q: %w: empty", n.ID, ErrBadDomain)
	}
	if n.State > Failed {
		return fmt.Errorf("node %q: %w: %d", n.ID, ErrBadState, n.State)
	}
	return nil
}

// ValidateStream checks one stream on its own.
func ValidateStream(s Stream) error {
	if err := validID("stream", s.ID); err != nil {
		return err
	}
	if s.Weight < 1 || s.Weight > MaxStreamWeight {
		return fmt.Errorf("stream %q: %w: %d (want 1..%d)", s.ID, ErrBadWeight, s.Weight, int64(MaxStreamWeight))
	}
	if s.Replicas < 1 || s.Replicas > MaxReplicas {
		return fmt.Errorf("stream %q: %w: %d (want 1..%d)", s.ID, ErrBadReplicas, s.Replicas, MaxReplicas)
	}
	if s.Scope != "" {
		if _, err := ParseDomain(s.Scope); err != nil {
			return fmt.Errorf("stream %q: %w: %v", s.ID, ErrBadScope, err)
		}
	}
	return nil
}
