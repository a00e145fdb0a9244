package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/understudy-nvr/understudy/engine/catalog"
)

// Status is what a node says about its recording, gossiped to every node.
// Its size grows with what is wrong, not with what works: it lists the
// streams placed on the node that it does not record, and counts the rest.
type Status struct {
	// Seq orders the statuses of one node; SetStatus sets it.
	Seq uint64
	// Digest identifies the placement the node computed (a hash of every
	// stream's node list). Two nodes with the same digest agree on where
	// every stream goes, so a node whose digest matches and whose Missing
	// omits a stream placed on it records that stream.
	Digest uint64
	// Missing lists the streams placed on the node that it does not record
	// now (starting, camera unreachable, failing), sorted.
	Missing []string
	// Truncated: Missing was cut to fit a gossip message; streams it does
	// not list may be missing too.
	Truncated bool
	// Home and Replica count the streams the node records in each role.
	Home, Replica uint32
	// CPUPercent is the node process's CPU use, 0..100 of the machine.
	CPUPercent float64
	// DiskUsed and DiskFree are the data disk's figures, in bytes.
	DiskUsed, DiskFree uint64
	// Time is when the figures were measured, by the node's clock.
	Time time.Time
}

// sameContent reports whether a and b differ only in Seq and the load
// figures that change all the time (CPU, disk, time).
func (a Status) sameContent(b Status) bool {
	return a.Digest == b.Digest && a.Truncated == b.Truncated && a.Home == b.Home &&
		a.Replica == b.Replica && slices.Equal(a.Missing, b.Missing)
}

const (
	msgStatus       = 2
	statusFormatV1  = 1
	statusOverhead  = 96 // fixed fields, generously
	statusMaxIDSize = catalog.MaxIDLen
)

// MaxStatusSize bounds an encoded status message, so that one fits a
// gossip packet (memberlist's UDP buffer is 1400 bytes) with room for
// memberlist's own framing.
const MaxStatusSize = 1200

// ErrCorruptStatus wraps every DecodeStatus failure.
var ErrCorruptStatus = errors.New("corrupt node status")

// EncodeStatus encodes the status of node as a gossip message (format 1):
//
//	byte     msgStatus = 2
//	byte     format = 1
//	uvarint  id length, id bytes
//	uvarint  seq
//	8 bytes  digest, big endian
//	byte     flags (bit 0: truncated)
//	uvarint  home, replica
//	8 bytes  cpu percent (float64 bits)
//	uvarint  disk used, disk free
//	varint   time, Unix nanoseconds
//	uvarint  missing count; per stream: uvarint length, id bytes
//
// Missing is cut (and Truncated set) so that the message fits
// MaxStatusSize.
func EncodeStatus(node string, s Status) []byte {
	b := []byte{msgStatus, statusFormatV1}
	b = binary.AppendUvarint(b, uint64(len(node)))
	b = append(b, node...)
	b = binary.AppendUvarint(b, s.Seq)
	b = binary.BigEndian.AppendUint64(b, s.Digest)
	flagsAt := len(b)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(s.Home))
	b = binary.AppendUvarint(b, uint64(s.Replica))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.CPUPercent))
	b = binary.AppendUvarint(b, s.DiskUsed)
	b = binary.AppendUvarint(b, s.DiskFree)
	var nanos int64
	if !s.Time.IsZero() {
		nanos = s.Time.UnixNano()
	}
	b = binary.AppendVarint(b, nanos)
	truncated := s.Truncated
	n, size := 0, len(b)+binary.MaxVarintLen32
	for _, id := range s.Missing {
		size += uvarintLen(uint64(len(id))) + len(id)
		if size > MaxStatusSize {
			truncated = true
			break
		}
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, id := range s.Missing[:n] {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	if truncated {
		b[flagsAt] = 1
	}
	return b
}

// DecodeStatus decodes what EncodeStatus wrote. Any failure wraps
// ErrCorruptStatus; it never panics.
func DecodeStatus(b []byte) (node string, s Status, err error) {
	bad := func(what string) (string, Status, error) {
		return "", Status{}, fmt.Errorf("%w: %s", ErrCorruptStatus, what)
	}
	if len(b) > MaxStatusSize {
		return bad(fmt.Sprintf("%d bytes, more than %d", len(b), MaxStatusSize))
	}
	if len(b) < 2 || b[0] != msgStatus || b[1] != statusFormatV1 {
		return bad("unknown type or format")
	}
	r := b[2:]
	str := func() (string, bool) {
		l, k := uvarint(r)
		if k <= 0 || l == 0 || l > statusMaxIDSize || l > uint64(len(r)-k) {
			return "", false
		}
		v := string(r[k : k+int(l)])
		r = r[k+int(l):]
		return v, true
	}
	num := func() (uint64, bool) {
		v, k := uvarint(r)
		if k <= 0 {
			return 0, false
		}
		r = r[k:]
		return v, true
	}
	var ok bool
	if node, ok = str(); !ok || catalog.ValidateNodeID(node) != nil {
		return bad("node id")
	}
	if s.Seq, ok = num(); !ok {
		return bad("seq")
	}
	if len(r) < 9 {
		return bad("short")
	}
	s.Digest = binary.BigEndian.Uint64(r)
	flags := r[8]
	r = r[9:]
	if flags&^1 != 0 {
		return bad("unknown flags")
	}
	s.Truncated = flags&1 != 0
	home, ok1 := num()
	replica, ok2 := num()
	if !ok1 || !ok2 || home > math.MaxUint32 || replica > math.MaxUint32 {
		return bad("stream counts")
	}
	s.Home, s.Replica = uint32(home), uint32(replica)
	if len(r) < 8 {
		return bad("short")
	}
	s.CPUPercent = math.Float64frombits(binary.BigEndian.Uint64(r))
	r = r[8:]
	if math.IsNaN(s.CPUPercent) || s.CPUPercent < 0 || s.CPUPercent > 100 {
		return bad("cpu percent")
	}
	if s.DiskUsed, ok = num(); !ok {
		return bad("disk used")
	}
	if s.DiskFree, ok = num(); !ok {
		return bad("disk free")
	}
	nanos, k := binary.Varint(r)
	if k <= 0 {
		return bad("time")
	}
	r = r[k:]
	if nanos != 0 {
		s.Time = time.Unix(0, nanos).UTC()
	}
	count, ok := num()
	if !ok || count > uint64(len(r)) {
		return bad("missing count")
	}
	for range count {
		id, ok := str()
		if !ok || catalog.ValidateID(id) != nil {
			return bad("missing stream id")
		}
		s.Missing = append(s.Missing, id)
	}
	if len(r) != 0 {
		return bad(fmt.Sprintf("%d trailing bytes", len(r)))
	}
	return node, s, nil
}

// statusBroadcast is one node's status to gossip; a newer status of the
// same node replaces it in the queue.
type statusBroadcast struct {
	node string
	msg  []byte
}

func (b *statusBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*statusBroadcast)
	return ok && ob.node == b.node
}
func (b *statusBroadcast) Message() []byte { return b.msg }
func (b *statusBroadcast) Finished()       {}

// SetStatus publishes this node's status. It is gossiped at once when its
// content changed (placement digest, missing streams, stream counts), and
// otherwise at most every StatusInterval, so that the load figures stay
// fresh without a message per call.
func (c *Cluster) SetStatus(s Status) {
	slices.Sort(s.Missing)
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	now := time.Now()
	if c.statusSent && s.sameContent(c.status) && now.Sub(c.statusAt) < c.cfg.StatusInterval {
		return
	}
	c.statusSeq++
	s.Seq = c.statusSeq
	c.status, c.statusAt, c.statusSent = s, now, true
	msg := EncodeStatus(c.cfg.Meta.ID, s)
	c.queue.QueueBroadcast(&statusBroadcast{node: c.cfg.Meta.ID, msg: msg})
}

// Statuses returns the last status received from every member alive now,
// this node's own included.
func (c *Cluster) Statuses() map[string]Status {
	out := make(map[string]Status)
	c.statusMu.Lock()
	if c.statusSent {
		out[c.cfg.Meta.ID] = c.status
	}
	c.statusMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.members {
		if name != c.cfg.Meta.ID && !p.gone && p.hasStatus {
			out[name] = p.status
		}
	}
	return out
}

// statusLoop re-gossips this node's status every StatusInterval, so nodes
// that joined since (or missed it) learn it.
func (c *Cluster) statusLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.statusMu.Lock()
		if c.statusSent {
			c.queue.QueueBroadcast(&statusBroadcast{node: c.cfg.Meta.ID, msg: EncodeStatus(c.cfg.Meta.ID, c.status)})
		}
		c.statusMu.Unlock()
	}
}

// receiveStatus merges a gossiped status and passes it on (epidemic
// spread) when it is news.
func (c *Cluster) receiveStatus(b []byte) {
	node, s, err := DecodeStatus(b)
	if err != nil {
		c.badMsg.log(c.log, "gossip message dropped", "size", len(b), "err", err)
		c.problem(ProblemBadMessage, "", fmt.Sprintf("a status message of %d bytes was dropped: %v", len(b), err))
		return
	}
	if node == c.cfg.Meta.ID {
		return
	}
	c.mu.Lock()
	p := c.members[node]
	if p == nil {
		// Not a member yet: it sends its status again every StatusInterval.
		c.mu.Unlock()
		return
	}
	news := !p.hasStatus || s.Seq > p.status.Seq
	if news {
		p.status, p.hasStatus = s, true
	}
	c.mu.Unlock()
	if news {
		c.queue.QueueBroadcast(&statusBroadcast{node: node, msg: bytes.Clone(b)})
		c.notify()
	}
}
