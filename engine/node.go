package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/understudy-nvr/understudy/backfill"
	"github.com/understudy-nvr/understudy/engine/api"
	"github.com/understudy-nvr/understudy/engine/audit"
	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/engine/reconcile"
	"github.com/understudy-nvr/understudy/engine/session"
	"github.com/understudy-nvr/understudy/placement"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/replica"
	"github.com/understudy-nvr/understudy/segment"
)

// Node is one running recorder: the segment store, the catalog, the
// supervisor that keeps one recording session per stream placed on this
// node, the event bus and the API server.
type Node struct {
	cfg     Config
	log     *slog.Logger
	store   *segment.Store
	db      *pebble.DB
	catalog *catalog.Catalog
	bus     *EventBus
	metrics *nodeMetrics
	version string

	listener net.Listener
	addr     string // advertised API address
	ready    atomic.Bool
	stopping chan struct{} // closed when shutdown begins: ends WatchEvents streams
	// indexFailed receives the segment index's fatal error: the node stops
	// with it, for its supervisor to restart it (recovery runs on start).
	indexFailed chan error
	// queueMemory is shared by the recording queues of all sessions
	// (Config.QueueMemoryMiB).
	queueMemory *session.MemoryBudget

	mu       sync.Mutex
	sessions map[string]*runningSession
	retired  session.Stats // counters of sessions that ended, summed

	cpuBits atomic.Uint64 // float64 bits of the last CPU sample

	cl   *cluster.Cluster      // nil: a lone node
	rec  *reconcile.Reconciler // the supervisor's only
	wake chan struct{}         // poke: reconcile now
	seen map[string]placement.State
	// suspects are the live members suspected at the last round
	// (noteSuspects); the supervisor's.
	suspects map[string]bool

	auth      *api.Authenticator
	api       *api.Server            // the API handlers and the federated reads
	peerToken atomic.Pointer[string] // the credential this node presents to peers

	holds holdingsState // this node's placement history; the supervisor's

	placeMu      sync.Mutex
	placed       map[string][]string // the last round's placement
	digest       uint64              // placementDigest(placed)
	selfState    string              // cluster state of this node
	selfWeight   int
	settingsMu   sync.Mutex // serialises UpdateNode's changes of the settings file
	filler       *backfill.Filler
	buffer       *replica.Buffer
	disk         *diskHealth
	announceMu   sync.Mutex // serialises the updates of this node's membership metadata
	audit        auditState
	backfillWake chan struct{}
}

// runningSession is one supervised recording.
type runningSession struct {
	stream      catalog.Stream
	role        reconcile.Role
	sess        *session.Session
	cancel      context.CancelFunc
	done        chan struct{}
	unreachable atomic.Bool
	started     time.Time // when the session was started
}

// openOutage returns the start of the camera outage the local session of
// stream is in now, if any.
func (n *Node) openOutage(stream string) (time.Time, bool) {
	if s := n.sessionOf(stream); s != nil {
		return s.OpenOutage()
	}
	return time.Time{}, false
}

// session returns the running session of stream on this node, or nil.
func (n *Node) sessionOf(stream string) *session.Session {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rs, ok := n.sessions[stream]; ok {
		return rs.sess
	}
	return nil
}

// retain runs archive retention every RetentionInterval until ctx ends.
func (n *Node) retain(ctx context.Context) {
	t := time.NewTicker(n.cfg.RetentionInterval)
	defer t.Stop()
	for {
		n.enforceRetention(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enforceRetention deletes, for every stream with archive segments here,
// those that ended more than its archive retention before now. A stream
// no longer in the catalog (deleted) keeps the default retention: its
// recordings age out like any other instead of staying forever.
func (n *Node) enforceRetention(now time.Time) {
	ret := map[string]time.Duration{}
	for _, e := range n.catalog.Entries() {
		if !e.Deleted {
			ret[e.ID] = e.Stream.ArchiveRetention
		}
	}
	ids, err := n.store.Streams()
	if err != nil {
		n.log.Error("retention: cannot list streams", "err", err)
		return
	}
	for _, id := range ids {
		r, ok := ret[id]
		if !ok || r <= 0 {
			r = catalog.DefaultArchiveRetention
		}
		rep, err := n.store.DeleteBefore(id, segment.ClassArchive, now.Add(-r))
		if err != nil {
			n.log.Error("retention failed", "stream", id, "err", err)
			continue
		}
		if rep.Segments > 0 || rep.Outages > 0 {
			// Once retention is reached this is every stream, every
			// interval: steady state, counted by the retention metrics.
			n.log.Debug("retention", "stream", id, "retention", r, "segments_deleted", rep.Segments,
				"bytes_deleted", rep.Bytes, "outages_deleted", rep.Outages)
		}
	}
}

// indexFailure is the segment store's OnIndexFailure: Run stops with err.
func (n *Node) indexFailure(err error) {
	select {
	case n.indexFailed <- err:
	default:
	}
}

// liveEdge returns the wall-clock time of the newest frame of a stream this
// node records right now (connected, a frame within the last 2 s).
func (n *Node) liveEdge(stream string) (time.Time, bool) {
	s := n.sessionOf(stream)
	if s == nil {
		return time.Time{}, false
	}
	st := s.Stats()
	if !st.Connected || st.LastReceived.IsZero() || time.Since(st.LastReceived) > 2*time.Second {
		return time.Time{}, false
	}
	return st.LastFrame, true
}

// requestReadTimeout bounds the time to read a request, body included.
// A variable for the tests only.
var requestReadTimeout = 30 * time.Second

// OpenNode opens the data directory (segment store under DataDir, catalog
// under DataDir/control) and binds the API listener. cfg must have passed
// EnsureDefaults and Validate. Close (or Run) releases everything.
func OpenNode(cfg Config, log *slog.Logger) (_ *Node, err error) {
	if log == nil {
		log = slog.Default()
	}
	// Not the named result: every failure returns a nil *Node, and this
	// one must still release what was opened before the failure.
	n := &Node{cfg: cfg, log: log, bus: NewEventBus(), sessions: make(map[string]*runningSession), version: buildVersion(), stopping: make(chan struct{}), indexFailed: make(chan error, 1),
		disk: newDiskHealth(), queueMemory: session.NewMemoryBudget(int64(cmp.Or(cfg.QueueMemoryMiB, DefaultQueueMemoryMiB)) << 20)}
	defer func() {
		if err != nil {
			n.closeStorage()
		}
	}()
	policy := segment.FsyncPart
	if cfg.Fsync == "interval" {
		policy = segment.FsyncInterval
	}
	if n.store, err = segment.Open(segment.Options{Dir: cfg.DataDir, FS: cfg.DiskFS, Node: cfg.ID, Logger: log, Fsync: policy,
		OnIndexFailure: n.indexFailure, OnQuarantine: n.quarantined, DropPartEvery: uint64(max(cfg.DropPartEvery, 0))}); err != nil {
		return nil, fmt.Errorf("open segment store: %w", err)
	}
	if rep := n.store.Recovery(); !rep.Consistent() {
		log.Warn("segment store recovered from a crash", "report", fmt.Sprint(rep))
	}
	// The store holds the directory lock now: no other process uses tmp.
	clearTmp(filepath.Join(cfg.DataDir, "tmp"), log)
	controlDir := cfg.DataDir + "/control"
	if n.db, err = catalog.OpenDB(controlDir, nil, log); err != nil {
		return nil, fmt.Errorf("open control db: %w", controlErr(controlDir, err))
	}
	if n.catalog, err = catalog.Open(catalog.Config{DB: n.db, NodeID: cfg.ID, Logger: log, Now: cfg.Clock}); err != nil {
		return nil, fmt.Errorf("open catalog: %w", controlErr(controlDir, err))
	}
	n.warnOrphanedArchive()
	if n.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.addr = cfg.AdvertiseAddress
	if n.addr == "" {
		n.addr = n.listener.Addr().String()
	}
	n.metrics = newNodeMetrics(n)
	n.wake = make(chan struct{}, 1)
	n.backfillWake = make(chan struct{}, 1)
	n.audit.auditor = audit.New(auditGrace)
	if n.buffer, err = n.newBuffer(); err != nil {
		return nil, err
	}
	if n.filler, err = n.newFiller(); err != nil {
		return nil, err
	}
	n.auth = api.NewAuthenticator(cfg.AdminToken, cfg.ReadToken, cfg.AnonymousRead)
	n.selfState, n.selfWeight = cluster.StateActive, cfg.Weight
	ns, err := loadNodeSettings(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if ns.State != "" {
		n.selfState = ns.State
	}
	if ns.Weight > 0 {
		if ns.Weight != cfg.Weight {
			log.Info("capacity weight set through the API overrides the config's", "weight", ns.Weight, "config", cfg.Weight, "file", nodeSettingsFile)
		}
		n.selfWeight = ns.Weight
	}
	handoff := cfg.HandoffTimeout
	if cfg.NoMakeBeforeBreak {
		handoff = time.Nanosecond
	}
	n.rec = reconcile.New(reconcile.Config{Self: cfg.ID, Level: cfg.PlacementLevel, Overload: cfg.PlacementOverload,
		HandoffTimeout: handoff, RejoinHold: cfg.RejoinHold})
	if err := n.startCluster(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.api = n.newAPI()
	return n, nil
}

// controlErr says what to do about a corrupt control db: unlike the
// segment index it cannot be rebuilt from the segment files.
func controlErr(dir string, err error) error {
	if !errors.Is(err, catalog.ErrCorruptDB) {
		return err
	}
	return fmt.Errorf("control db %s: %w: it cannot be rebuilt from the segment files; restore it from a backup, or move it aside to start with an empty catalog", dir, err)
}

// warnOrphanedArchive warns when the catalog knows no stream at all (not
// even a deleted one) while the archive holds recordings: the control
// directory was lost, replaced or restored from an old backup, and nothing
// will be recorded until the streams are added again.
func (n *Node) warnOrphanedArchive() {
	for _, e := range n.catalog.Entries() {
		if catalog.IsStreamEntryID(e.ID) {
			return // the catalog knows a stream, if only a deleted one
		}
	}
	streams, err := n.store.Streams()
	if err != nil || len(streams) == 0 {
		return
	}
	n.log.Warn("the catalog holds no streams but the archive holds recordings: was the control directory lost or replaced? nothing is recorded until the streams are added again",
		"archived_streams", len(streams), "control_dir", n.cfg.DataDir+"/control")
}

// clearTmp removes what a node killed mid-work (an export staged by an
// older version, say) left in dir: nothing in it outlives a process.
func clearTmp(dir string, log *slog.Logger) {
	des, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot list the temporary directory", "dir", dir, "err", err)
		}
		return
	}
	files, bytes := 0, int64(0)
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files++
				if fi, err := d.Info(); err == nil {
					bytes += fi.Size()
				}
			}
			return nil
		})
		if err := os.RemoveAll(p); err != nil {
			log.Warn("cannot remove a stale temporary file", "path", p, "err", err)
		}
	}
	if files > 0 {
		log.Info("removed stale temporary files", "dir", dir, "files", files, "bytes", bytes)
	}
}

// Addr is the bound API address.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// Handler returns the node's HTTP handler (api.Server.Handler): Connect,
// gRPC and gRPC-Web for the three services (bearer-token auth), gRPC
// health and server reflection (open), and the plain endpoints: GET
// /v1/export (read role), /metrics (read role), /healthz and /readyz
// (open), /debug/pprof/ (admin role).
func (n *Node) Handler() http.Handler { return n.api.Handler() }

// Catalog is the node's stream catalog.
func (n *Node) Catalog() *catalog.Catalog { return n.catalog }

// Store is the node's segment store.
func (n *Node) Store() *segment.Store { return n.store }

// Events is the node's event bus.
func (n *Node) Events() *EventBus { return n.bus }

func (n *Node) closeStorage() {
	if n.listener != nil {
		n.listener.Close()
	}
	if n.cl != nil { // it writes into the catalog: before the db closes
		if err := n.cl.Shutdown(); err != nil {
			n.log.Warn("cluster shutdown", "err", err)
		}
		n.cl = nil
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.log.Error("close control db", "err", err)
		}
		n.db = nil
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Error("close segment store", "err", err)
		}
		n.store = nil
	}
}

// Run serves the API and records until ctx ends, then shuts down
// gracefully: it stops the sessions (closing their segments), closes the
// HTTP server and closes the stores.
func (n *Node) Run(ctx context.Context) error {
	defer n.closeStorage()
	srv := &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Requests are small (maxRequestBytes): a client still sending
		// its body after requestReadTimeout holds a connection (and a file
		// descriptor the recorder needs) for nothing. Streaming responses
		// are not affected: they read their one request message first.
		ReadTimeout:    requestReadTimeout,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	if n.cfg.TLSCert == "" {
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = p

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); n.supervise(runCtx) }()
	go func() { defer wg.Done(); n.sampleCPU(runCtx) }()
	go func() { defer wg.Done(); n.retain(runCtx) }()
	go func() { defer wg.Done(); n.bufferLoop(runCtx) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.watchDisk(runCtx) }()
	if !n.cfg.NoBackfill {
		wg.Add(1)
		go func() { defer wg.Done(); n.backfillLoop(runCtx) }()
	}

	serveErr := make(chan error, 1)
	go func() {
		var err error
		if n.cfg.TLSCert != "" {
			err = srv.ServeTLS(n.listener, n.cfg.TLSCert, n.cfg.TLSKey)
		} else {
			err = srv.Serve(n.listener)
		}
		serveErr <- err
	}()
	n.ready.Store(true)
	n.log.Info("node serving", "id", n.cfg.ID, "domain", n.cfg.Domain, "addr", n.Addr(), "tls", n.cfg.TLSCert != "", "version", n.version)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	case ierr := <-n.indexFailed:
		// Recording on with a broken index would write files no one can
		// find: stop, and let the restart's recovery index them.
		err = fmt.Errorf("segment index failed, stopping for a restart: %w", ierr)
		n.log.Error("stopping: the segment index failed", "err", ierr)
	}
	n.ready.Store(false)
	n.log.Info("node shutting down")
	if n.cl != nil {
		// Peers learn at once that this node is gone and promote the
		// replicas of its streams, which already record them.
		if lerr := n.cl.Leave(2 * time.Second); lerr != nil {
			n.log.Warn("leaving the cluster", "err", lerr)
		}
	}
	close(n.stopping)
	cancel()
	wg.Wait() // the supervisor has stopped every session: segments are closed
	sctx, scancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		n.log.Warn("http shutdown", "err", serr)
		srv.Close()
	}
	n.log.Info("node stopped")
	return err
}

// supervise reconciles the sessions with the catalog at start and after
// every catalog change, and stops them all when ctx ends.
// The supervisor also runs a round every second: sessions that started or
// stopped recording change this node's status, and the reconciler's holds
// and handoff timeouts end only in a round.
func (n *Node) supervise(ctx context.Context) {
	changes, stop := n.catalog.Watch()
	defer stop()
	var members <-chan struct{}
	if n.cl != nil {
		members = n.cl.Changes()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n.reconcile(ctx)
	n.syncHoldings(time.Now())
	for {
		select {
		case <-ctx.Done():
			n.stopAll()
			return
		case <-changes:
		case <-members:
		case <-n.wake:
		case <-tick.C:
		}
		n.reconcile(ctx)
		n.syncHoldings(time.Now())
	}
}

// startSession runs a session for s; n.mu is held.
func (n *Node) startSession(ctx context.Context, s catalog.Stream, role reconcile.Role) error {
	rs := &runningSession{stream: s, role: role, done: make(chan struct{}), started: time.Now()}
	class := roleClass(role)
	sess, err := session.New(n.store, session.Config{
		Stream:          s.ID,
		URL:             s.RecordingURL(),
		Class:           class,
		Transport:       n.cfg.Transport,
		Dial:            n.cfg.CameraDial,
		SegmentDuration: n.cfg.SegmentDuration,
		Memory:          n.queueMemory,
		Logger:          n.log,
		Now:             n.cfg.Clock,
		OnEvent:         func(e session.Event) { n.onSessionEvent(rs, e) },
	})
	if err != nil {
		return err
	}
	rs.sess = sess
	sctx, cancel := context.WithCancel(ctx)
	rs.cancel = cancel
	n.sessions[s.ID] = rs
	go func() {
		defer close(rs.done)
		if err := sess.Run(sctx); err != nil {
			n.log.Error("recording session failed", "stream", s.ID, "err", err)
		}
	}()
	n.log.Info("recording started", "stream", s, "role", role.String(), "class", class.String())
	n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_RECORDING_STARTED, Stream: s.ID, Node: n.cfg.ID,
		Message: "recording started as " + role.String(), Details: map[string]string{"role": role.String(), "class": class.String()}})
	return nil
}

// Why a recording stops (the "reason" of EVENT_KIND_RECORDING_STOPPED),
// besides the reconciler's reasons (stopReason).
const (
	stopChanged  = "stream URL or credentials changed: restarting"
	stopShutdown = "node shutting down"
)

func (n *Node) stopSession(rs *runningSession, reason string) {
	rs.cancel()
	<-rs.done
	st := rs.sess.Stats()
	n.mu.Lock()
	n.retired.Add(st)
	n.mu.Unlock()
	n.log.Info("recording stopped", "stream", rs.stream.ID, "reason", reason)
	n.bus.Publish(Event{Kind: understudyv1.EventKind_EVENT_KIND_RECORDING_STOPPED, Stream: rs.stream.ID, Node: n.cfg.ID,
		Message: "recording stopped: " + reason, Details: map[string]string{"reason": reason, "role": rs.role.String()}})
}

func (n *Node) stopAll() {
	n.mu.Lock()
	all := make([]stop, 0, len(n.sessions))
	for id, rs := range n.sessions {
		all = append(all, stop{rs, stopShutdown})
		delete(n.sessions, id)
	}
	n.mu.Unlock()
	n.stopSessions(all)
}

// stop is a session to stop and why.
type stop struct {
	rs     *runningSession
	reason string
}

// stopSessions stops the sessions all at once and waits for them. Each
// writes what its queue holds before it ends, which on a node that fell
// behind its disk takes a while: one after the other, deleting a hundred
// streams took minutes while the deleted streams went on recording.
func (n *Node) stopSessions(all []stop) {
	var wg sync.WaitGroup
	for _, st := range all {
		wg.Add(1)
		go func() { defer wg.Done(); n.stopSession(st.rs, st.reason) }()
	}
	wg.Wait()
}

// onSessionEvent turns a session event into bus events; it must not block.
func (n *Node) onSessionEvent(rs *runningSession, e session.Event) {
	ev := Event{Time: e.Time, Kind: sessionEventKind(e.Kind), Stream: e.Stream, Node: n.cfg.ID, Message: e.Message, Details: map[string]string{}}
	switch e.Kind {
	case session.EventDisconnected:
		ev.Details["start"] = e.Start.UTC().Format(time.RFC3339Nano)
		ev.Details["gap_kind"] = "GAP_KIND_SOURCE"
	case session.EventOverflow:
		ev.Details["start"] = cmp.Or(e.Start, e.Time).UTC().Format(time.RFC3339Nano)
		ev.Details["gap_kind"] = "GAP_KIND_SYSTEM"
	case session.EventOverflowEnded:
		ev.Details["start"] = e.Start.UTC().Format(time.RFC3339Nano)
		ev.Details["end"] = e.End.UTC().Format(time.RFC3339Nano)
		ev.Details["gap_kind"] = "GAP_KIND_SYSTEM"
	case session.EventSourceUnreachable:
		rs.unreachable.Store(true)
	case session.EventWriteError:
		ev.Details["error"] = e.Message
		n.noteWriteError(e.Err)
	case session.EventConnected:
		if !e.Start.IsZero() {
			ev.Details["start"] = e.Start.UTC().Format(time.RFC3339Nano)
		}
		ev.Details["end"] = e.Time.UTC().Format(time.RFC3339Nano)
		if rs.unreachable.Swap(false) {
			n.bus.Publish(Event{Time: e.Time, Kind: understudyv1.EventKind_EVENT_KIND_SOURCE_REACHABLE, Stream: e.Stream, Node: n.cfg.ID, Message: "camera reachable again"})
		}
	}
	n.bus.Publish(ev)
}

// sessionTotals sums the counters of the running and the ended sessions.
func (n *Node) sessionTotals() (tot session.Stats, assigned, recording int) {
	n.mu.Lock()
	tot = n.retired
	runs := make([]*runningSession, 0, len(n.sessions))
	for _, rs := range n.sessions {
		runs = append(runs, rs)
	}
	n.mu.Unlock()
	for _, rs := range runs {
		st := rs.sess.Stats()
		tot.Add(st)
		if st.Connected {
			recording++
		}
	}
	return tot, len(runs), recording
}

// diskUsage returns the used and free bytes of the data directory's file
// system (free: available to this unprivileged process).
func (n *Node) diskUsage() (used, free uint64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.cfg.DataDir, &st); err != nil {
		return 0, 0
	}
	bs := uint64(st.Bsize)
	return (st.Blocks - st.Bfree) * bs, st.Bavail * bs
}

// CPUPercent is the process's CPU use over the last sample, as a share of
// the whole machine (0..100).
func (n *Node) CPUPercent() float64 { return float64frombits(n.cpuBits.Load()) }

// sampleCPU measures CPU use every 2 s and publishes a CPU threshold event
// at every crossing of the configured threshold.
func (n *Node) sampleCPU(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	prevCPU, prevAt := processCPU(), time.Now()
	above := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The wall time is read with the CPU time, not taken from the
			// tick: a tick delivered late (a stalled process) would
			// otherwise divide more CPU by less wall time, past 100 %.
			cpu, now := processCPU(), time.Now()
			wall := now.Sub(prevAt)
			pct := 0.0
			if wall > 0 {
				pct = min(100, max(0, 100*float64(cpu-prevCPU)/float64(wall)/float64(runtime.NumCPU())))
			}
			prevCPU, prevAt = cpu, now
			n.cpuBits.Store(float64bits(pct))
			if (pct >= n.cfg.CPUThreshold) != above {
				above = !above
				dir := "above"
				if !above {
					dir = "back below"
				}
				n.bus.Publish(Event{Time: now, Kind: understudyv1.EventKind_EVENT_KIND_CPU_THRESHOLD, Node: n.cfg.ID,
					Message: fmt.Sprintf("CPU %.1f%% %s threshold %.0f%%", pct, dir, n.cfg.CPUThreshold),
					Details: map[string]string{"cpu_percent": fmt.Sprintf("%.1f", pct), "threshold": fmt.Sprintf("%.0f", n.cfg.CPUThreshold)}})
			}
		}
	}
}

// processCPU is the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
