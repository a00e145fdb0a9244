package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// The catalog also holds the cluster's known-node registry: one register
// per node, written by the node itself (its id, failure domain, capacity
// weight and state) whenever they change, and replicated like the
// streams. A node in the registry that is not a live member is known to
// be down: placement treats it as failed (only its copies are replaced)
// rather than as never having existed. ForgetNode tombstones a node that
// is gone for good. Node entries live beside the streams under ids that
// start with NodeEntryPrefix, which no stream id can (':' is not a stream
// id character); the stream methods (Get, List, Enabled, ...) never see
// them.

// NodeEntryPrefix starts the entry id of a node record.
const NodeEntryPrefix = "node:"

// MaxNodeDomainLen bounds a node record's domain, in bytes.
const MaxNodeDomainLen = 1024

// NodeRecord is a node as the registry knows it.
type NodeRecord struct {
	ID     string // node id (ValidateNodeID)
	Domain string // failure-domain path, such as zone=z0/rack=r1/host=h3
	Weight int    // capacity weight, 1..MaxWeight
	State  string // active, draining or saturated: its state when it wrote the record
}

// Validate checks a record as Merge and the decoder accept it.
func (r NodeRecord) Validate() error {
	if err := ValidateNodeID(r.ID); err != nil {
		return err
	}
	if r.Domain == "" || len(r.Domain) > MaxNodeDomainLen {
		return fmt.Errorf("node %q: domain must be 1..%d bytes", r.ID, MaxNodeDomainLen)
	}
	if r.Weight < 1 || r.Weight > MaxNodeRecordWeight {
		return fmt.Errorf("node %q: weight %d out of range 1..%d", r.ID, r.Weight, MaxNodeRecordWeight)
	}
	switch r.State {
	case "active", "draining", "saturated":
	default:
		return fmt.Errorf("node %q: state %q is not active, draining or saturated", r.ID, r.State)
	}
	return nil
}

// MaxNodeRecordWeight bounds a node record's weight (placement's
// MaxNodeWeight).
const MaxNodeRecordWeight = 1 << 20

// IsNodeEntryID tells whether an entry id is that of a node record.
func IsNodeEntryID(id string) bool { return strings.HasPrefix(id, NodeEntryPrefix) }

// NodeEntryID is the entry id of node id's record.
func NodeEntryID(id string) string { return NodeEntryPrefix + id }

// ErrNodeNotFound is returned by ForgetNode for a node the registry does
// not hold.
var ErrNodeNotFound = errors.New("node not in the registry")

// RegisterNode writes r as its node's record, unless the registry holds
// exactly r already (so a node may call it every round). It reports
// whether it wrote.
func (c *Catalog) RegisterNode(r NodeRecord) (bool, error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	id := NodeEntryID(r.ID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && !e.Deleted && e.Node == r {
		return false, nil
	}
	e := Entry{ID: id, Version: c.stamp(), Node: r}
	if err := c.commit(e); err != nil {
		return false, err
	}
	c.log.Info("node registered", "node", r.ID, "domain", r.Domain, "weight", r.Weight, "state", r.State, "version", e.Version.String())
	return true, nil
}

// ForgetNode replaces node id's record by a tombstone: the node is gone
// for good and its copies are placed as if it never existed. A node
// forgotten by mistake registers itself again when it next runs.
func (c *Catalog) ForgetNode(id string) error {
	eid := NodeEntryID(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[eid]; !ok || e.Deleted {
		return fmt.Errorf("catalog: node %q: %w", id, ErrNodeNotFound)
	}
	e := Entry{ID: eid, Version: c.stamp(), Deleted: true}
	if err := c.commit(e); err != nil {
		return err
	}
	c.log.Info("node forgotten", "node", id, "version", e.Version.String())
	return nil
}

// Nodes returns the registry's live records ordered by node id.
func (c *Catalog) Nodes() []NodeRecord {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []NodeRecord
	for _, id := range c.ids {
		if e := c.entries[id]; !e.Deleted && IsNodeEntryID(id) {
			out = append(out, e.Node)
		}
	}
	return out
}
