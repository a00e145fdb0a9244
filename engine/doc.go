// Package engine is the node: the one place where Understudy is wired
// together. It owns the recording sessions (RTSP client per stream), the
// supervisor that reconciles them with the catalog, the event bus, the API
// server and the metrics.
//
// # Running a node
//
// OpenNode opens the data directory (segments and their index under
// Config.DataDir, the catalog's Pebble DB under DataDir/control) and binds
// the API listener; Node.Run serves and records until its context ends,
// then stops every session (closing their segments), shuts the HTTP server
// down and closes the stores. LoadConfig builds the Config of
// `understudy serve` from flags, UNDERSTUDY_* environment variables and a
// YAML file (precedence flag > env > file > default; unknown keys are an
// error naming the key).
//
// The supervisor re-reads catalog.Enabled on start and after every catalog
// change (Catalog.Watch): it starts a session for each enabled stream that
// Place assigns to this node, stops the sessions of removed, disabled or
// re-placed streams, and restarts a session whose URL or credentials
// changed. Place is a function of (streams, live nodes); with one node,
// every enabled stream is recorded by it as home (ClassArchive).
//
// # API
//
// One port serves Connect, gRPC and gRPC-Web (HTTP/1.1, h2c, or TLS with
// HTTP/2 by ALPN), gzip and zstd compression:
//
//   - understudy.v1.StreamService, RecordingService, ClusterService:
//     bearer tokens (Authorization: Bearer T) compared in constant time.
//     The admin token may call everything; the read token the read-only
//     calls (Get/List, timeline, segments, exports, nodes, placement,
//     events). No token: unauthenticated (unless anonymous-read, which
//     grants the read role); a known token below the needed role:
//     permission_denied. Bad input: invalid_argument naming the field.
//   - grpc.health.v1 and grpc.reflection (v1 and v1alpha): open, without a
//     token, so load balancers and grpcurl work; they reveal no stream or
//     recording data.
//   - GET /v1/export?stream=ID&start=RFC3339&end=RFC3339: the clip as
//     video/mp4 (read role); 400 naming the parameter, 404 when nothing is
//     recorded, 429 while Config.MaxExports exports (this and ExportClip
//     together) run; HEAD gets 405.
//   - GET /metrics: Prometheus metrics (read role); names in the Metric*
//     constants.
//   - GET /healthz (process alive) and /readyz (serving): open.
//   - /debug/pprof/: admin role.
//
// WatchEvents streams the in-process EventBus. Publishing never blocks: a
// subscriber whose buffer (Config.EventBuffer) is full loses events, and
// the next event it gets carries details["events_dropped"].
package engine
