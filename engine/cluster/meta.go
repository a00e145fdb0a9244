package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

// Node states a Meta advertises.
const (
	StateActive    = "active"    // records and takes new streams
	StateDraining  = "draining"  // hands its streams off, takes no new ones
	StateSaturated = "saturated" // cannot record (its disk refuses writes): takes no copies, its streams move away (make-before-break)
)

var states = []string{StateActive, StateDraining, StateSaturated}

// Bounds of the Meta fields, in bytes, chosen so an encoded Meta always fits
// memberlist's 512-byte node metadata.
const (
	MaxDomainLen     = 64
	MaxAPIAddressLen = 200
	MaxVersionLen    = 64
	// MaxMetaSize is the largest encoded Meta.
	MaxMetaSize = 512
)

const metaFormatV1 = 1

// ErrCorruptMeta wraps every DecodeMeta failure.
var ErrCorruptMeta = errors.New("corrupt node meta")

// Meta is what a node advertises about itself in its memberlist metadata.
type Meta struct {
	ID         string // node id, the memberlist name; as catalog.ValidateNodeID
	Domain     string // failure domain (rack, site), ≤ 64 bytes
	APIAddress string // host:port of the node's API, ≤ 200 bytes
	Version    string // build version, ≤ 64 bytes
	Weight     int    // placement weight, 0..2^31-1
	State      string // StateActive (default when empty), StateDraining, StateSaturated
}

// Validate checks m as EncodeMeta needs it (State "" counts as active).
func (m Meta) Validate() error {
	if err := catalog.ValidateNodeID(m.ID); err != nil {
		return fmt.Errorf("meta id: %w", err)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"domain", m.Domain, MaxDomainLen}, {"api address", m.APIAddress, MaxAPIAddressLen}, {"version", m.Version, MaxVersionLen}} {
		if len(f.v) > f.max {
			return fmt.Errorf("meta %s: at most %d bytes, got %d", f.name, f.max, len(f.v))
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("meta %s: must be valid UTF-8", f.name)
		}
	}
	if m.Weight < 0 || m.Weight > 1<<31-1 {
		return fmt.Errorf("meta weight: must be in 0..2^31-1, got %d", m.Weight)
	}
	if m.State != "" && stateCode(m.State) < 0 {
		return fmt.Errorf("meta state: must be one of %v, got %q", states, m.State)
	}
	return nil
}

func stateCode(s string) int {
	if s == "" {
		return 0
	}
	for i, v := range states {
		if v == s {
			return i
		}
	}
	return -1
}

// EncodeMeta encodes m (format 1):
//
//	byte     format = 1
//	string   id, domain, api address, version (uvarint length + bytes)
//	uvarint  weight
//	byte     state: 0 active, 1 draining, 2 saturated
func EncodeMeta(m Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64)
	b = append(b, metaFormatV1)
	for _, s := range []string{m.ID, m.Domain, m.APIAddress, m.Version} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(m.Weight))
	b = append(b, byte(stateCode(m.State)))
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("meta: encodes to %d bytes, more than %d", len(b), MaxMetaSize)
	}
	return b, nil
}

// DecodeMeta decodes what EncodeMeta wrote. Any failure wraps
// ErrCorruptMeta; it never panics. State comes back explicit ("active").
func DecodeMeta(b []byte) (Meta, error) {
	bad := func(format string, args ...any) (Meta, error) {
		return Meta{}, fmt.Errorf("%w: %s", ErrCorruptMeta, fmt.Sprintf(format, args...))
	}
	if len(b) > MaxMetaSize {
		return bad("%d bytes, more than %d", len(b), MaxMetaSize)
	}
	if len(b) == 0 || b[0] != metaFormatV1 {
		return bad("unknown format")
	}
	r := b[1:]
	var fields [4]string
	for i := range fields {
		n, k := uvarint(r)
		if k <= 0 || n > uint64(len(r)-k) {
			return bad("truncated string")
		}
		fields[i] = string(r[k : k+int(n)])
		r = r[k+int(n):]
	}
	w, k := uvarint(r)
	if k <= 0 || w > 1<<31-1 {
		return bad("bad weight")
	}
	r = r[k:]
	if len(r) != 1 || int(r[0]) >= len(states) {
		return bad("bad state or trailing bytes")
	}
	m := Meta{ID: fields[0], Domain: fields[1], APIAddress: fields[2], Version: fields[3], Weight: int(w), State: states[r[0]]}
	if err := m.Validate(); err != nil {
		return bad("%v", err)
	}
	return m, nil
}
