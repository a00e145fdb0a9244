package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/engine/catalog"
)

const testPassword = "s3cret-Pa55"

var testKey = []byte("0123456789abcdef0123456789abcdef")

// logBuf collects every log line of a test, to check none leaks a secret.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type node struct {
	c   *Cluster
	cat *catalog.Catalog
	ft  *FaultTransport
	// closeDB closes the catalog's DB (once; the test's cleanup too).
	closeDB func() error
}

type opts struct {
	join     []string
	keys     [][]byte
	fault    bool
	logs     *logBuf
	version  string
	problems *problemLog
	pushPull time.Duration // 0: the default
}

// problemLog collects what a node passes to Config.OnProblem.
type problemLog struct {
	mu   sync.Mutex
	seen []string // kind peer
}

func (p *problemLog) add(kind, peer, _ string) {
	p.mu.Lock()
	p.seen = append(p.seen, kind+" "+peer)
	p.mu.Unlock()
}

func (p *problemLog) count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.seen {
		if strings.HasPrefix(s, kind+" ") {
			n++
		}
	}
	return n
}

func startNode(t *testing.T, id string, o opts) *node {
	t.Helper()
	if o.logs == nil {
		o.logs = &logBuf{}
	}
	log := slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := catalog.OpenDB(t.TempDir(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	closeDB := sync.OnceValue(db.Close)
	t.Cleanup(func() { _ = closeDB() })
	cat, err := catalog.Open(catalog.Config{DB: db, NodeID: id, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys := o.keys
	if keys == nil {
		keys = [][]byte{testKey}
	}
	cfg := Config{
		Meta:             Meta{ID: id, Domain: "rack-" + id, APIAddress: "127.0.0.1:80" + id[len(id)-1:], Version: cmpOr(o.version, "v1.2.3"), Weight: 10},
		BindAddr:         "127.0.0.1",
		BindPort:         0,
		Join:             o.join,
		RejoinInterval:   time.Second,
		Keys:             keys,
		Catalog:          cat,
		Logger:           log,
		PushPullInterval: o.pushPull,
	}
	if o.problems != nil {
		cfg.OnProblem = o.problems.add
	}
	n := &node{cat: cat, closeDB: closeDB}
	if o.fault {
		ft, err := NewFaultTransport("127.0.0.1", 0)
		if err != nil {
			t.Fatal(err)
		}
		n.ft, cfg.Transport = ft, ft
	}
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	n.c = c
	return n
}

// startCluster starts n nodes n1..nN, each joining n1; the last one uses a
// FaultTransport when lastFault.
func startCluster(t *testing.T, count int, lastFault bool, logs *logBuf) []*node {
	t.Helper()
	var nodes []*node
	for i := range count {
		o := opts{logs: logs, fault: lastFault && i == count-1}
		if i > 0 {
			o.join = []string{nodes[0].c.GossipAddr()}
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i+1), o))
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "all members alive", func() bool { return aliveCount(n.c) == count })
	}
	return nodes
}

func aliveCount(c *Cluster) int {
	k := 0
	for _, m := range c.Members() {
		if m.Alive {
			k++
		}
	}
	return k
}

func isAlive(c *Cluster, id string) bool {
	for _, m := range c.Members() {
		if m.ID == id {
			return m.Alive
		}
	}
	return false
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func testStream(id string) catalog.Stream {
	return catalog.Stream{
		ID:               id,
		URL:              "rtsp://192.0.2.10:554/stream1",
		Username:         "admin",
		Password:         testPassword,
		Replicas:         2,
		ArchiveRetention: 24 * time.Hour,
		Labels:           map[string]string{"site": "garage"},
		Enabled:          true,
	}
}

func visible(cat *catalog.Catalog, id string) bool {
	_, err := cat.Get(id)
	return err == nil
}

func encodedEntries(cat *catalog.Catalog) []string {
	var out []string
	for _, e := range cat.Entries() {
		out = append(out, string(catalog.EncodeEntry(e)))
	}
	return out
}

func TestJoinMembersMeta(t *testing.T) {
	nodes := startCluster(t, 3, false, nil)
	for _, n := range nodes {
		ms := n.c.Members()
		if len(ms) != 3 {
			t.Fatalf("%s sees %d members, want 3", n.c.Meta().ID, len(ms))
		}
		for i, m := range ms {
			id := fmt.Sprintf("n%d", i+1)
			want := Meta{ID: id, Domain: "rack-" + id, APIAddress: "127.0.0.1:80" + id[1:], Version: "v1.2.3", Weight: 10, State: StateActive}
			if m.Meta != want || !m.Alive || !strings.HasPrefix(m.Addr, "127.0.0.1:") {
				t.Errorf("%s sees member %d = %+v, want %+v alive on 127.0.0.1", n.c.Meta().ID, i, m, want)
			}
		}
		if got, want := ms[slices.IndexFunc(ms, func(m Member) bool { return m.ID == n.c.Meta().ID })].Addr, n.c.GossipAddr(); got != want {
			t.Errorf("self addr %s, GossipAddr %s", got, want)
		}
	}
}

func TestReplicateCreateDeleteLatency(t *testing.T) {
	logs := &logBuf{}
	nodes := startCluster(t, 3, false, logs)
	a := nodes[0]
	if _, err := a.cat.Create(testStream("cam-a")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		waitFor(t, 5*time.Second, "create visible", func() bool { return visible(n.cat, "cam-a") })
		s, _ := n.cat.Get("cam-a")
		if s.Password != testPassword || s.Username != "admin" {
			t.Errorf("replicated credentials differ")
		}
	}

	// Latency over 20 writes, spread over the three nodes.
	var lat []time.Duration
	for i := range 20 {
		w := nodes[i%3]
		id := fmt.Sprintf("lat-%02d", i)
		start := time.Now()
		if _, err := w.cat.Create(testStream(id)); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			waitFor(t, 5*time.Second, id+" visible", func() bool { return visible(n.cat, id) })
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	median, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	t.Logf("write→visible on all 3 nodes over %d writes: median %s, p99 %s, max %s", len(lat), median, p99, lat[len(lat)-1])
	if p99 > 2*time.Second {
		t.Errorf("p99 latency %s, want < 2s", p99)
	}

	if err := nodes[1].cat.Delete("cam-a"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{nodes[0], nodes[2]} {
		waitFor(t, 5*time.Second, "delete visible", func() bool {
			_, err := n.cat.Get("cam-a")
			return errors.Is(err, catalog.ErrNotFound)
		})
		i := slices.IndexFunc(n.cat.Entries(), func(e catalog.Entry) bool { return e.ID == "cam-a" })
		if i < 0 || !n.cat.Entries()[i].Deleted {
			t.Errorf("no tombstone for cam-a")
		}
	}
	if strings.Contains(logs.String(), testPassword) {
		t.Errorf("a log line contains the stream password")
	}
}

func TestKilledNodeSeenDead(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, false, nil)
	start := time.Now()
	_ = nodes[2].c.Shutdown()
	for _, n := range nodes[:2] {
		waitFor(t, 15*time.Second, "n3 not alive", func() bool { return !isAlive(n.c, "n3") })
	}
	t.Logf("killed node seen not alive by both peers after %s", time.Since(start))
	if got := len(nodes[0].c.Members()); got != 3 {
		t.Errorf("dead member dropped from Members: %d listed", got)
	}
}

func TestPartitionHeals(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, true, nil)
	a, c := nodes[0], nodes[2]
	if _, err := a.cat.Create(testStream("before")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "before visible on every node", func() bool { return visible(n.cat, "before") })
	}

	c.ft.Cut()
	cutAt := time.Now()
	for i := range 3 {
		if _, err := a.cat.Create(testStream(fmt.Sprintf("during-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[1].cat.Delete("before"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cat.Create(testStream("on-n3")); err != nil {
		t.Fatal(err)
	}
	// Both sides declare the other dead: a real partition.
	waitFor(t, 15*time.Second, "n1 sees n3 dead", func() bool { return !isAlive(a.c, "n3") })
	waitFor(t, 15*time.Second, "n3 sees n1 dead", func() bool { return !isAlive(c.c, "n1") })
	t.Logf("partition detected after %s", time.Since(cutAt))
	if visible(c.cat, "during-0") || !visible(c.cat, "before") || visible(a.cat, "on-n3") {
		t.Fatalf("writes crossed the partition")
	}

	c.ft.Heal()
	healAt := time.Now()
	want := func() bool {
		e1, e2, e3 := encodedEntries(a.cat), encodedEntries(nodes[1].cat), encodedEntries(c.cat)
		return len(e1) == 5 && slices.Equal(e1, e2) && slices.Equal(e1, e3)
	}
	d := waitFor(t, 30*time.Second, "catalogs identical after heal", want)
	t.Logf("catalogs identical %s after heal", d)
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "all alive after heal", func() bool { return aliveCount(n.c) == 3 })
	}
	t.Logf("membership whole %s after heal", time.Since(healAt))
}

// TestWritesReachLiveNodesWhileOneIsDown: while a node is down, the
// writes of the live nodes reach each other by broadcast, not only at the
// next push/pull. A node fails exactly when many entries change (its
// streams' holdings move), and memberlist gossips to a node it declared
// dead for GossipToTheDeadTime: broadcasts spent on it would be lost.
// Push/pull is off here (an hour), so only broadcasts can deliver.
func TestWritesReachLiveNodesWhileOneIsDown(t *testing.T) {
	t.Parallel()
	var nodes []*node
	for i := range 3 {
		o := opts{fault: i == 2, pushPull: time.Hour}
		if i > 0 {
			o.join = []string{nodes[0].c.GossipAddr()}
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i+1), o))
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "all members alive", func() bool { return aliveCount(n.c) == 3 })
	}
	a, b := nodes[0], nodes[1]
	nodes[2].ft.Cut()
	waitFor(t, 15*time.Second, "n1 and n2 see n3 dead", func() bool { return !isAlive(a.c, "n3") && !isAlive(b.c, "n3") })
	const writes = 100
	for i := range writes {
		if _, err := a.cat.Create(testStream(fmt.Sprintf("while-down-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	missing := func() (out []string) {
		for i := range writes {
			if id := fmt.Sprintf("while-down-%03d", i); !visible(b.cat, id) {
				out = append(out, id)
			}
		}
		return out
	}
	start := time.Now()
	for len(missing()) > 0 && time.Since(start) < 15*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d of %d writes on n1 never reached n2 by broadcast while n3 was down: %v", len(m), writes, m)
	}
	t.Logf("%d writes on n1 reached n2 by broadcast in %s while n3 was down", writes, time.Since(start).Round(time.Millisecond))
}

func TestWrongKeyCannotJoin(t *testing.T) {
	probs := &problemLog{}
	n1 := startNode(t, "n1", opts{problems: probs})
	nodes := []*node{n1, startNode(t, "n2", opts{join: []string{n1.c.GossipAddr()}})}
	waitFor(t, 5*time.Second, "n2 joined", func() bool { return aliveCount(n1.c) == 2 })
	bad := startNode(t, "n9", opts{join: []string{nodes[0].c.GossipAddr()}, keys: [][]byte{[]byte("fedcba9876543210fedcba9876543210")}})
	if _, err := bad.cat.Create(testStream("intruder")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two rejoin attempts
	for _, n := range nodes {
		if slices.ContainsFunc(n.c.Members(), func(m Member) bool { return m.ID == "n9" }) {
			t.Errorf("%s sees the node with the wrong key", n.c.Meta().ID)
		}
		if visible(n.cat, "intruder") {
			t.Errorf("%s merged an entry from the node with the wrong key", n.c.Meta().ID)
		}
	}
	if got := len(bad.c.Members()); got != 1 {
		t.Errorf("node with the wrong key sees %d members, want 1", got)
	}
	if got := probs.count(ProblemWrongKey); got != 1 {
		t.Errorf("n1 reported %d wrong-key problems (%v), want 1 (at most one a minute)", got, probs.seen)
	}
}

// TestProblemsReported: a peer of another build version and a second node
// with an id already taken are each reported once (and the cluster goes on
// working); the second node with the same id does not displace the first.
func TestProblemsReported(t *testing.T) {
	probs := &problemLog{}
	n1 := startNode(t, "n1", opts{problems: probs})
	startNode(t, "n2", opts{join: []string{n1.c.GossipAddr()}, version: "v9.9.9"})
	waitFor(t, 5*time.Second, "n1 reports the version mismatch", func() bool { return probs.count(ProblemVersion) == 1 })
	startNode(t, "n2", opts{join: []string{n1.c.GossipAddr()}})
	waitFor(t, 5*time.Second, "n1 reports the duplicate id", func() bool { return probs.count(ProblemDuplicateID) >= 1 })
	time.Sleep(1500 * time.Millisecond)
	if got := probs.count(ProblemDuplicateID); got != 1 {
		t.Errorf("duplicate id reported %d times, want once a minute", got)
	}
	if got := probs.count(ProblemVersion); got != 1 {
		t.Errorf("version mismatch reported %d times, want once a minute", got)
	}
}

func TestSetMetaSeen(t *testing.T) {
	nodes := startCluster(t, 3, false, nil)
	// Drain the notifications of the joins.
	for _, n := range nodes {
		select {
		case <-n.c.Changes():
		default:
		}
	}
	if err := nodes[0].c.SetMeta(func(m *Meta) { m.State = StateDraining; m.Weight = 3 }); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "meta change seen", func() bool {
			m := n.c.Members()[0]
			return m.ID == "n1" && m.State == StateDraining && m.Weight == 3
		})
	}
	select {
	case <-nodes[1].c.Changes():
	case <-time.After(time.Second):
		t.Errorf("no change notification for a meta update")
	}
	if err := nodes[0].c.SetMeta(func(m *Meta) { m.ID = "other" }); err == nil {
		t.Errorf("SetMeta changed the id")
	}
	if err := nodes[0].c.SetMeta(func(m *Meta) { m.State = "bogus" }); err == nil {
		t.Errorf("SetMeta took an invalid state")
	}
}

func TestBadMessagesDropped(t *testing.T) {
	probs := &problemLog{}
	n := startNode(t, "n1", opts{problems: probs})
	d := (*delegate)(n.c)
	good := encodeEntryMsg(catalog.Entry{ID: "x", Version: catalog.Version{WallMS: time.Now().UnixMilli(), Node: "n7"}, Deleted: true})
	batch := EncodeBatch([][]byte{good, good})
	badBatches := [][]byte{{msgBatch}, {msgBatch, 0}, batch[:len(batch)-1], EncodeBatch([][]byte{good, batch}), EncodeBatch([][]byte{good[:len(good)-1]})}
	for _, m := range append([][]byte{nil, {0}, {msgEntry}, good[:len(good)-1], append([]byte{9}, good[1:]...), make([]byte, MaxEntrySize+10)}, badBatches...) {
		d.NotifyMsg(m)
		d.MergeRemoteState(m, false)
	}
	if len(n.cat.Entries()) != 0 {
		t.Fatalf("a bad message changed the catalog")
	}
	if got := probs.count(ProblemBadMessage); got != 1 {
		t.Errorf("%d bad-message problems reported, want 1 (once a minute)", got)
	}
	d.NotifyMsg(good)
	if len(n.cat.Entries()) != 1 {
		t.Fatalf("a good message was not merged")
	}
	other := encodeEntryMsg(catalog.Entry{ID: "y", Version: catalog.Version{WallMS: time.Now().UnixMilli(), Node: "n7"}, Deleted: true})
	d.NotifyMsg(EncodeBatch([][]byte{other, good}))
	if len(n.cat.Entries()) != 2 {
		t.Fatalf("the entries of a batch were not merged")
	}
}

// TestNoMergeAfterShutdown: the node closes the catalog's DB right after
// Shutdown, while memberlist may still hand over a message or push/pull it
// received before; merging it then wrote into a closed Pebble DB, which
// panics (a CI run died of it). After Shutdown every merge is dropped.
func TestNoMergeAfterShutdown(t *testing.T) {
	n := startNode(t, "n1", opts{})
	d := (*delegate)(n.c)
	if err := n.c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.closeDB(); err != nil {
		t.Fatal(err)
	}
	e := catalog.Entry{ID: "late", Version: catalog.Version{WallMS: time.Now().UnixMilli(), Node: "n7"}, Deleted: true}
	d.NotifyMsg(encodeEntryMsg(e))
	d.MergeRemoteState(EncodeState([]catalog.Entry{e}), false)
	if len(n.cat.Entries()) != 0 {
		t.Fatalf("an entry was merged after Shutdown")
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{ID: strings.Repeat("i", catalog.MaxNodeIDLen), Domain: strings.Repeat("d", MaxDomainLen), APIAddress: strings.Repeat("a", MaxAPIAddressLen), Version: strings.Repeat("v", MaxVersionLen), Weight: 1<<31 - 1, State: StateSaturated}
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMetaSize {
		t.Fatalf("largest meta encodes to %d bytes", len(b))
	}
	got, err := DecodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("DecodeMeta = %+v, %v", got, err)
	}
	for _, bad := range []Meta{{}, {ID: "a", State: "x"}, {ID: "a", Weight: -1}, {ID: "a", Domain: strings.Repeat("d", MaxDomainLen+1)}} {
		if _, err := EncodeMeta(bad); err == nil {
			t.Errorf("EncodeMeta(%+v) succeeded", bad)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	entries := []catalog.Entry{
		{ID: "a", Version: catalog.Version{WallMS: 1e12, Logical: 3, Node: "n1"}, Deleted: true},
		{ID: "b", Version: catalog.Version{WallMS: 1e12 + 1, Node: "n2"}, Deleted: true},
	}
	got, _, err := DecodeState(EncodeState(entries))
	if err != nil || len(got) != 2 || got[0].ID != "a" || got[1].Version != entries[1].Version {
		t.Fatalf("DecodeState = %v, %v", got, err)
	}
	if got, _, err := DecodeState(EncodeState(nil)); err != nil || len(got) != 0 {
		t.Fatalf("empty state: %v, %v", got, err)
	}
	// An entry in a format of a newer version (here 200) is left out and
	// counted; the rest of the state is kept.
	state := EncodeState(entries)
	enc := catalog.EncodeEntry(entries[0])
	at := bytes.Index(state, enc)
	state[at] = 200
	got, newer, err := DecodeState(state)
	if err != nil || newer != 1 || len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("state with a newer entry: %v, %d newer, %v; want b kept, 1 newer", got, newer, err)
	}
}
