package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/understudy-nvr/understudy/engine/catalog"
)

// Config configures a Cluster.
type Config struct {
	// Meta is what this node advertises; Meta.ID is its memberlist name and
	// must be unique in the cluster. Required.
	Meta Meta
	// BindAddr is the address gossip listens on. Default "0.0.0.0".
	BindAddr string
	// BindPort is the gossip port, UDP and TCP. 0 picks a free port (read it
	// back with GossipAddr), so a deployment sets it (memberlist's usual port
	// is 7946). Ignored when Transport is set.
	BindPort int
	// AdvertiseAddr is the IP peers reach this node at. Default: the bind
	// address, or a private IP when bound to 0.0.0.0.
	AdvertiseAddr string
	// AdvertisePort is the port peers reach this node at. Default: the bound
	// port.
	AdvertisePort int
	// Join lists host:port addresses of peers to join at start and to re-join
	// every RejoinInterval. An empty list starts a new cluster.
	Join []string
	// RejoinInterval is how often the node re-joins the Join addresses and
	// the known peers it does not see alive, so the sides of a healed
	// partition merge again (memberlist does not do it by itself). Default
	// 10s.
	RejoinInterval time.Duration
	// Keys are the AES keys (16, 24 or 32 bytes) of the gossip; the first
	// encrypts, all decrypt. Nil: no encryption, which exposes the camera
	// credentials the catalog holds: set it outside of tests.
	Keys [][]byte
	// Catalog is the catalog to replicate. Required.
	Catalog *catalog.Catalog
	// Logger receives the cluster's log lines. Default slog.Default().
	Logger *slog.Logger
	// OnProblem, if set, is told of what a cluster operator must hear of
	// beyond the log (at most once a minute per kind and peer): kind is
	// ProblemDuplicateID, ProblemVersion, ProblemBadMessage or
	// ProblemWrongKey. It must not block.
	OnProblem func(kind, peer, msg string)
	// Transport replaces memberlist's UDP/TCP transport (tests inject
	// faults with FaultTransport). Default: a NetTransport on
	// BindAddr:BindPort.
	Transport memberlist.NodeAwareTransport
	// PushPullInterval is how often the node exchanges its whole catalog
	// with a random peer (anti-entropy). Default 30s (memberlist LAN).
	PushPullInterval time.Duration
	// ProbeInterval is memberlist's failure-probe interval. Default 1s
	// (memberlist LAN): a killed node is declared dead in about 5-6 s.
	ProbeInterval time.Duration
	// StatusInterval is how often this node re-gossips its Status when its
	// content did not change (a change is gossiped at once). Default 5s.
	StatusInterval time.Duration
}

// EnsureDefaults fills the zero fields that have defaults.
func (c *Config) EnsureDefaults() {
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PushPullInterval == 0 {
		c.PushPullInterval = 30 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 5 * time.Second
	}
	if c.Meta.State == "" {
		c.Meta.State = StateActive
	}
}

// Member is one node of the cluster as this node sees it.
type Member struct {
	Meta
	// Alive: the node is a member now (alive or suspect; not declared
	// dead, not left).
	Alive bool
	// Left: the node left the cluster on purpose (shutdown), not died.
	Left bool
	// Suspect: this node's failure probes of it went unanswered, and it
	// has not answered a probe since nor been declared dead. It is still
	// Alive (placement does not move its copies for a suspicion).
	Suspect bool
	// Addr is the node's gossip address, host:port.
	Addr string
}

// Cluster is this node's membership in the cluster and the replication of
// its catalog. Its methods are safe for concurrent use.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	cat   *catalog.Catalog
	ml    *memberlist.Memberlist
	keys  *memberlist.Keyring // nil: gossip not encrypted
	queue *memberlist.TransmitLimitedQueue

	metaMu  sync.Mutex
	meta    Meta
	metaEnc []byte

	mu      sync.Mutex
	members map[string]*peer // by name, self included
	// suspectFor bounds how long a failed probe keeps a peer Suspect.
	suspectFor time.Duration

	changes chan struct{}

	sentMu sync.Mutex
	sent   map[string]catalog.Version // newest version broadcast per stream id

	statusMu   sync.Mutex
	status     Status // this node's, as last gossiped
	statusAt   time.Time
	statusSent bool
	statusSeq  uint64

	badMsg rateLog
	// problems: when each (kind, peer) was last passed to OnProblem.
	problemMu sync.Mutex
	problems  map[string]time.Time

	// revived receives the address of a peer seen alive again after this
	// node had it dead: rejoinLoop syncs state with it at once.
	revived chan string

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
	nodes    atomic.Int32

	// gate keeps catalog merges from outliving Shutdown: memberlist's
	// Shutdown does not wait for a packet or push/pull it is handling, and
	// the caller closes the catalog's DB right after (a write into a closed
	// Pebble DB panics). Merges hold it shared; Shutdown takes it alone and
	// sets down, after which merges are dropped.
	gate sync.RWMutex
	down bool
}

type peer struct {
	member      Member
	left        bool   // left gracefully: not re-joined
	gone        bool   // dead or left
	warnVersion string // build version already warned about
	status      Status // last status received
	hasStatus   bool
	suspectAt   time.Time       // when this node's probes of it last failed; zero once it answered
	node        memberlist.Node // its address, for this node's own gossip
}

// Start joins (or founds) the cluster and starts replicating cfg.Catalog.
// A join that reaches no peer is logged, not an error: the node keeps
// trying every RejoinInterval.
func Start(cfg Config) (*Cluster, error) {
	cfg.EnsureDefaults()
	if cfg.Catalog == nil {
		return nil, errors.New("cluster: Config.Catalog is required")
	}
	enc, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("cluster: Config.Meta: %w", err)
	}
	if cfg.RejoinInterval < 0 || cfg.PushPullInterval < 0 || cfg.ProbeInterval < 0 || cfg.StatusInterval < 0 {
		return nil, errors.New("cluster: intervals must be positive")
	}
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "cluster", "node", cfg.Meta.ID),
		cat:     cfg.Catalog,
		meta:    cfg.Meta,
		metaEnc: enc,
		members: make(map[string]*peer),
		changes: make(chan struct{}, 1),
		revived: make(chan string, 16),
		sent:    make(map[string]catalog.Version),
		stop:    make(chan struct{}),
	}
	c.badMsg.every = 10 * time.Second
	// Sequence numbers grow across restarts too, so peers take the first
	// status of a restarted node as news.
	c.statusSeq = uint64(time.Now().UnixNano())
	c.nodes.Store(1)
	c.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(c.nodes.Load()) },
		RetransmitMult: 4,
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	mc.PushPullInterval = cfg.PushPullInterval
	mc.ProbeInterval = cfg.ProbeInterval
	mc.Delegate = (*delegate)(c)
	mc.Events = (*events)(c)
	mc.Conflict = (*conflicts)(c)
	mc.Ping = (*pings)(c)
	// A suspicion ends in a probe answered (NotifyPingComplete), a
	// refutation seen as an update, or a death; this bounds it otherwise:
	// memberlist's longest suspicion timeout for up to 100 nodes.
	c.suspectFor = time.Duration(mc.SuspicionMaxTimeoutMult*mc.SuspicionMult*2) * mc.ProbeInterval
	mc.Logger = log.New(&logWriter{log: c.log, c: c}, "", 0)
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster: Config.Keys: %w", err)
		}
		mc.Keyring = kr
		c.keys = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}

	// Entries already held are not broadcast: joins and push/pull carry them.
	for _, e := range c.cat.Entries() {
		c.sent[e.ID] = e.Version
	}
	watch, cancel := c.cat.Watch()

	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.ml = ml
	c.log.Info("cluster started", "gossip", c.GossipAddr(), "encrypted", mc.Keyring != nil)
	if len(cfg.Join) > 0 {
		if n, err := ml.Join(cfg.Join); err != nil {
			c.log.Warn("join failed, retrying every rejoin interval", "peers", cfg.Join, "err", err)
		} else {
			c.log.Info("joined", "contacted", n)
		}
	}
	c.wg.Add(4)
	// Room for memberlist's framing of a user packet: its type byte, the
	// CRC, the compression header and the encryption overhead.
	go c.gossipLoop(mc.GossipInterval, mc.GossipNodes, mc.UDPBufferSize-64)
	go c.broadcastLoop(watch, cancel)
	go c.rejoinLoop()
	go c.statusLoop()
	return c, nil
}

// GossipAddr returns the address peers gossip with this node at, host:port.
func (c *Cluster) GossipAddr() string { return c.ml.LocalNode().Address() }

// Changes returns a channel that receives a value after membership or a
// member's metadata changes (join, update, dead, left). Notifications
// coalesce; suspicion alone is not notified. Re-read Members.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

func (c *Cluster) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// Members returns every node this node knows, self included, ordered by ID.
// Dead and left nodes stay listed with Alive false.
func (c *Cluster) Members() []Member {
	// Liveness comes from the event delegate, not from memberlist.Members():
	// the *Node values that returns are mutated in place by memberlist's
	// packet handler without a lock the caller can take. A suspect node
	// stays alive until it is declared dead, so a short freeze moves nothing.
	c.mu.Lock()
	out := make([]Member, 0, len(c.members))
	for name, p := range c.members {
		m := p.member
		m.Alive = name == c.cfg.Meta.ID || !p.gone
		m.Left = p.left && !m.Alive
		m.Suspect = m.Alive && name != c.cfg.Meta.ID && c.suspectLocked(p)
		out = append(out, m)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Meta returns this node's current metadata.
func (c *Cluster) Meta() Meta {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.meta
}

// SetMeta changes this node's metadata with apply (the ID cannot change)
// and gossips it. An invalid result changes nothing.
func (c *Cluster) SetMeta(apply func(*Meta)) error {
	c.metaMu.Lock()
	m := c.meta
	apply(&m)
	if m.ID != c.meta.ID {
		c.metaMu.Unlock()
		return errors.New("cluster: SetMeta: the id cannot change")
	}
	if m.State == "" {
		m.State = StateActive
	}
	enc, err := EncodeMeta(m)
	if err != nil {
		c.metaMu.Unlock()
		return fmt.Errorf("cluster: SetMeta: %w", err)
	}
	c.meta, c.metaEnc = m, enc
	c.metaMu.Unlock()
	if err := c.ml.UpdateNode(5 * time.Second); err != nil {
		return fmt.Errorf("cluster: SetMeta: %w", err)
	}
	return nil
}

// Leave announces that the node leaves, waiting up to timeout for the
// announcement to spread, then shuts down.
func (c *Cluster) Leave(timeout time.Duration) error {
	err := c.ml.Leave(timeout)
	if err2 := c.Shutdown(); err == nil {
		err = err2
	}
	return err
}

// Shutdown stops gossip without announcing it: peers see the node fail.
// It is idempotent.
func (c *Cluster) Shutdown() error {
	var err error
	c.stopOnce.Do(func() {
		close(c.stop)
		err = c.ml.Shutdown()
		c.gate.Lock()
		c.down = true
		c.gate.Unlock()
		c.wg.Wait()
	})
	return err
}

// broadcastLoop queues a broadcast of every entry whose version is newer
// than the one this node last broadcast, after each catalog change.
func (c *Cluster) broadcastLoop(watch <-chan struct{}, cancel func()) {
	defer c.wg.Done()
	defer cancel()
	for {
		select {
		case <-c.stop:
			return
		case _, ok := <-watch:
			if !ok {
				return
			}
			c.broadcastNew()
		}
	}
}

func (c *Cluster) broadcastNew() {
	c.sentMu.Lock()
	defer c.sentMu.Unlock()
	for _, e := range c.cat.Entries() {
		if v, ok := c.sent[e.ID]; ok && v.Compare(e.Version) >= 0 {
			continue
		}
		c.sent[e.ID] = e.Version
		c.queue.QueueBroadcast(&entryBroadcast{id: e.ID, msg: encodeEntryMsg(e)})
	}
}

// entryBroadcast is one entry to gossip; a newer one of the same stream id
// replaces it in the queue.
type entryBroadcast struct {
	id  string
	msg []byte
}

func (b *entryBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*entryBroadcast)
	return ok && ob.id == b.id
}
func (b *entryBroadcast) Message() []byte { return b.msg }
func (b *entryBroadcast) Finished()       {}

// gossipPackets bounds the packets gossipLoop sends a peer in one
// interval. memberlist sends one; a failover changes the holdings of
// every stream the failed node held, and at about 8 entries a packet one
// packet a round would take seconds to spread a few hundred.
const gossipPackets = 8

// gossipLoop sends the queued broadcasts (catalog entries and statuses)
// every interval to up to fanout random live peers, packets of at most
// limit bytes, as memberlist's own gossip would, but only to peers that
// can receive them. memberlist gossips to suspect nodes, and to dead
// ones for GossipToTheDeadTime (30 s); each send uses up one of a
// broadcast's few transmissions (RetransmitMult × log10 of the node
// count), so while a node is failing, which is when the most entries
// change (its streams' holdings move), a broadcast could go only to it
// and reach the live nodes at the next push/pull, up to PushPullInterval
// later. A suspect or dead peer misses nothing for good: the join on its
// revival and every push/pull carry the whole catalog.
func (c *Cluster) gossipLoop(interval time.Duration, fanout, limit int) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.queue.NumQueued() == 0 {
			continue
		}
		for _, to := range c.gossipTargets(fanout) {
			// Up to gossipPackets packets a peer, and about each message
			// once: the queue hands out the least-sent first.
			queued := c.queue.NumQueued()
			for sent, pkts := 0, 0; sent < queued && pkts < gossipPackets; pkts++ {
				// The length prefix of a message in a batch: 3 bytes
				// hold up to 2 MB.
				msgs := c.queue.GetBroadcasts(3, limit-1)
				if len(msgs) == 0 {
					break
				}
				sent += len(msgs)
				pkt := msgs[0]
				if len(msgs) > 1 {
					pkt = EncodeBatch(msgs)
				}
				if err := c.ml.SendBestEffort(&to, pkt); err != nil {
					c.log.Debug("gossip", "peer", to.Name, "err", err)
				}
			}
		}
	}
}

// gossipTargets picks up to k random peers that are alive and not
// suspect.
func (c *Cluster) gossipTargets(k int) []memberlist.Node {
	c.mu.Lock()
	out := make([]memberlist.Node, 0, len(c.members))
	for name, p := range c.members {
		if name != c.cfg.Meta.ID && !p.gone && !c.suspectLocked(p) {
			out = append(out, p.node)
		}
	}
	c.mu.Unlock()
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(k, len(out))]
}

// suspectLocked reports whether this node's probes of p failed within
// the longest suspicion timeout. c.mu is held.
func (c *Cluster) suspectLocked(p *peer) bool {
	return !p.suspectAt.IsZero() && time.Since(p.suspectAt) < c.suspectFor
}

// rejoinLoop re-joins the Join addresses and the known peers not seen
// alive, so partitions heal.
func (c *Cluster) rejoinLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case a := <-c.revived:
			// A peer this node had dead is alive again: a healed
			// partition, often noticed through a refuted death before any
			// rejoin. Nothing written on either side meanwhile was
			// broadcast across, so exchange full state now rather than at
			// the next push/pull, up to PushPullInterval away.
			if _, err := c.ml.Join([]string{a}); err != nil {
				c.log.Debug("sync with revived peer", "peer", a, "err", err)
			} else {
				c.log.Debug("synced with revived peer", "peer", a)
			}
			continue
		case <-t.C:
		}
		addrs := c.rejoinAddrs()
		if len(addrs) == 0 {
			continue
		}
		n, err := c.ml.Join(addrs)
		if err != nil {
			c.log.Debug("rejoin", "peers", addrs, "contacted", n, "err", err)
		} else {
			c.log.Debug("rejoin", "peers", addrs, "contacted", n)
		}
	}
}

func (c *Cluster) rejoinAddrs() []string {
	aliveAddr := make(map[string]bool)
	alive := make(map[string]bool)
	c.mu.Lock()
	for name, p := range c.members {
		if !p.gone {
			aliveAddr[p.member.Addr] = true
			alive[name] = true
		}
	}
	c.mu.Unlock()
	var out []string
	for _, a := range c.cfg.Join {
		if !aliveAddr[a] {
			out = append(out, a)
		}
	}
	c.mu.Lock()
	for name, p := range c.members {
		if name != c.cfg.Meta.ID && !p.left && !alive[name] && p.member.Addr != "" && !slices.Contains(out, p.member.Addr) {
			out = append(out, p.member.Addr)
		}
	}
	c.mu.Unlock()
	slices.Sort(out)
	return out
}

// delegate implements memberlist.Delegate.
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte {
	c := (*Cluster)(d)
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if len(c.metaEnc) > limit {
		c.log.Error("node meta exceeds memberlist's limit", "size", len(c.metaEnc), "limit", limit)
		return nil
	}
	return bytes.Clone(c.metaEnc)
}

func (d *delegate) NotifyMsg(b []byte) {
	c := (*Cluster)(d)
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.down {
		return
	}
	if len(b) > 0 && b[0] == msgBatch {
		msgs, err := DecodeBatch(b)
		if err != nil {
			c.badMsg.log(c.log, "gossip message dropped", "size", len(b), "err", err)
			c.problem(ProblemBadMessage, "", fmt.Sprintf("a gossip batch of %d bytes was dropped: %v", len(b), err))
			return
		}
		for _, m := range msgs {
			c.receive(m)
		}
		return
	}
	c.receive(b)
}

// receive merges one gossiped entry or status (not a batch).
func (c *Cluster) receive(b []byte) {
	if len(b) > 0 && b[0] == msgStatus {
		c.receiveStatus(b)
		return
	}
	if len(b) == 0 || b[0] != msgEntry || len(b)-1 > MaxEntrySize {
		c.badMsg.log(c.log, "gossip message dropped", "size", len(b), "err", "unknown type or oversized")
		c.problem(ProblemBadMessage, "", fmt.Sprintf("a gossip message of %d bytes was dropped: unknown type or oversized", len(b)))
		return
	}
	e, err := catalog.DecodeEntry(b[1:])
	if errors.Is(err, catalog.ErrUnknownFormat) {
		c.badMsg.log(c.log, "gossiped entry of a newer version left out", "size", len(b), "err", err)
		return
	}
	if err != nil {
		c.badMsg.log(c.log, "gossip message dropped", "size", len(b), "err", err)
		c.problem(ProblemBadMessage, "", fmt.Sprintf("a gossip message of %d bytes was dropped: %v", len(b), err))
		return
	}
	if _, err := c.cat.Merge(e); err != nil {
		c.log.Error("merge gossiped entry", "id", e.ID, "err", err)
	}
}

// GetBroadcasts gives memberlist's gossip nothing: gossipLoop sends the
// queue, to live peers only.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d *delegate) LocalState(join bool) []byte {
	return EncodeState((*Cluster)(d).cat.Entries())
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	c := (*Cluster)(d)
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.down {
		return
	}
	entries, newer, err := DecodeState(buf)
	if newer > 0 {
		c.badMsg.log(c.log, "push/pull entries of a newer version left out", "entries", newer)
	}
	if err != nil {
		c.badMsg.log(c.log, "push/pull state dropped", "size", len(buf), "err", err)
		c.problem(ProblemBadMessage, "", fmt.Sprintf("a push/pull state of %d bytes was dropped: %v", len(buf), err))
		return
	}
	applied := 0
	for _, e := range entries {
		ok, err := c.cat.Merge(e)
		if err != nil {
			c.log.Error("merge pushed entry", "id", e.ID, "err", err)
			continue
		}
		if ok {
			applied++
		}
	}
	if applied > 0 {
		c.log.Debug("push/pull merged", "entries", len(entries), "applied", applied, "join", join)
	}
}

// events implements memberlist.EventDelegate.
type events Cluster

func (ev *events) NotifyJoin(n *memberlist.Node)   { (*Cluster)(ev).nodeEvent(n, false) }
func (ev *events) NotifyUpdate(n *memberlist.Node) { (*Cluster)(ev).nodeEvent(n, false) }
func (ev *events) NotifyLeave(n *memberlist.Node)  { (*Cluster)(ev).nodeEvent(n, true) }

func (c *Cluster) nodeEvent(n *memberlist.Node, gone bool) {
	m, err := DecodeMeta(n.Meta)
	if err != nil {
		c.log.Warn("peer has unreadable meta", "peer", n.Name, "err", err)
		m = Meta{ID: n.Name}
	}
	if m.ID != n.Name {
		c.log.Warn("peer meta id differs from its name", "peer", n.Name, "meta_id", m.ID)
		m.ID = n.Name
	}
	c.mu.Lock()
	p := c.members[n.Name]
	if p == nil {
		p = &peer{}
		c.members[n.Name] = p
	}
	revived := p.gone && !gone && n.Name != c.cfg.Meta.ID
	p.member = Member{Meta: m, Addr: n.Address()}
	p.node = *n
	p.suspectAt = time.Time{}
	p.left = gone && n.State == memberlist.StateLeft
	p.gone = gone
	warn := m.Version != c.cfg.Meta.Version && p.warnVersion != m.Version && !gone
	if warn {
		p.warnVersion = m.Version
	}
	alive := 0
	for _, q := range c.members {
		if !q.gone {
			alive++
		}
	}
	c.mu.Unlock()
	c.nodes.Store(int32(max(alive, 1)))
	if revived {
		select {
		case c.revived <- n.Address():
		default: // the periodic rejoin and push/pull still come
		}
	}
	switch {
	case gone:
		c.log.Info("peer gone", "peer", n.Name, "state", stateName(n.State))
	case warn:
		c.log.Warn("peer runs a different build version", "peer", n.Name, "version", m.Version, "ours", c.cfg.Meta.Version)
		c.problem(ProblemVersion, n.Name, fmt.Sprintf("node %s runs build %s, this node %s", n.Name, m.Version, c.cfg.Meta.Version))
	}
	c.notify()
}

// pings implements memberlist.PingDelegate: a probe answered ends a
// suspicion.
type pings Cluster

func (*pings) AckPayload() []byte { return nil }

func (pg *pings) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	c := (*Cluster)(pg)
	c.mu.Lock()
	p := c.members[other.Name]
	was := p != nil && !p.suspectAt.IsZero()
	if was {
		p.suspectAt = time.Time{}
	}
	c.mu.Unlock()
	if was {
		c.log.Info("suspected peer answers again", "peer", other.Name)
		c.notify()
	}
}

// suspect notes that this node's probes of name failed (memberlist says so
// only in its log: "Suspect NAME has failed, no acks received").
func (c *Cluster) suspect(name string) {
	c.mu.Lock()
	p := c.members[name]
	if p != nil && !p.gone {
		p.suspectAt = time.Now()
	}
	c.mu.Unlock()
	if p != nil {
		c.notify()
	}
}

// conflicts implements memberlist.ConflictDelegate.
type conflicts Cluster

func (cf *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	(*Cluster)(cf).log.Error("duplicate node id in the cluster", "id", existing.Name,
		"existing", existing.Address(), "other", other.Address())
	(*Cluster)(cf).problem(ProblemDuplicateID, existing.Name, fmt.Sprintf("two nodes call themselves %s: %s and %s; give each node its own --id", existing.Name, existing.Address(), other.Address()))
}

// The kinds of OnProblem.
const (
	ProblemDuplicateID = "duplicate-id"
	ProblemVersion     = "version-mismatch"
	ProblemBadMessage  = "bad-message"
	ProblemWrongKey    = "wrong-key"
)

// problem passes a problem to Config.OnProblem, at most once a minute per
// kind and peer.
func (c *Cluster) problem(kind, peer, msg string) {
	if c.cfg.OnProblem == nil {
		return
	}
	now := time.Now()
	key := kind + "\x00" + peer
	c.problemMu.Lock()
	if c.problems == nil {
		c.problems = map[string]time.Time{}
	}
	last, seen := c.problems[key]
	if seen && now.Sub(last) < time.Minute {
		c.problemMu.Unlock()
		return
	}
	c.problems[key] = now
	c.problemMu.Unlock()
	c.cfg.OnProblem(kind, peer, msg)
}

// rateLog logs at most one line per interval, counting the ones it drops.
type rateLog struct {
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (r *rateLog) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.dropped++
		r.mu.Unlock()
		return
	}
	dropped := r.dropped
	r.last, r.dropped = now, 0
	r.mu.Unlock()
	l.Warn(msg, append(args, "suppressed", dropped)...)
}

// logWriter turns memberlist's "[LEVEL] memberlist: text" lines into slog;
// a message no key decrypts (a peer with another gossip key) is also a
// problem.
type logWriter struct {
	log *slog.Logger
	c   *Cluster
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if w.c != nil && (strings.Contains(line, "decrypt") || strings.Contains(line, "No installed keys")) {
		peer := ""
		if i := strings.Index(line, "from="); i >= 0 {
			peer = strings.Fields(line[i+len("from="):] + " ")[0]
			if h, _, err := net.SplitHostPort(peer); err == nil {
				peer = h // stream connections come from ephemeral ports
			}
		}
		w.c.problem(ProblemWrongKey, peer, "gossip from "+cmpOr(peer, "a peer")+" that no key of this node decrypts: it has another gossip key, or is not part of this cluster")
	}
	if w.c != nil {
		if i := strings.Index(line, "memberlist: Suspect "); i >= 0 {
			if name, ok := strings.CutSuffix(line[i+len("memberlist: Suspect "):], " has failed, no acks received"); ok {
				go w.c.suspect(name) // not on memberlist's goroutine: it may hold its locks
			}
		}
	}
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if rest, ok := cutPrefix(line, prefix); ok {
			level, line = l, rest
			break
		}
	}
	w.log.Log(context.Background(), level, line, "source", "memberlist")
	return len(p), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return string(bytes.TrimSpace([]byte(s[len(prefix):]))), true
	}
	return s, false
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// SetKeys replaces the gossip keys without a restart: the first encrypts,
// all decrypt. Rotation without downtime takes three steps, each applied on
// every node before the next: add the new key second (every node can read
// it), move it first (every node writes with it), drop the old one. A
// cluster started without keys cannot turn encryption on here: that needs
// a restart of every node.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if c.keys == nil {
		return errors.New("cluster: gossip is not encrypted; restart with a key file to encrypt it")
	}
	if len(keys) == 0 {
		return errors.New("cluster: no key: turning encryption off needs a restart")
	}
	for i, k := range keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("cluster: key %d is %d bytes; want 16, 24 or 32", i+1, l)
		}
	}
	for _, k := range keys {
		if err := c.keys.AddKey(k); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	if err := c.keys.UseKey(keys[0]); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for _, old := range c.keys.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := c.keys.RemoveKey(old); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
		}
	}
	c.log.Info("gossip keys replaced", "keys", len(keys))
	return nil
}
