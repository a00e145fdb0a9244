// Package api is the API of a node: the handlers of the three Connect
// services of understudy.v1, the HTTP mux around them, the bearer-token
// roles, and the federated reads that make any node answer for the
// cluster. It knows the node only through the Node interface (placement,
// stream statuses, live edges, node settings, events, readiness) and the
// stores of Config (catalog, segment store, cluster); package engine
// builds it (New) and serves Server.Handler.
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
//   - GET /metrics: Prometheus metrics (read role): Config.Metrics, the
//     node's registry (names in package engine's Metric* constants).
//   - GET /healthz (process alive) and /readyz (serving): open.
//   - /debug/pprof/: admin role.
//
// # Federation
//
// A read that is not about this node alone asks the other live members
// that may hold the stream over the range (the placement history:
// catalog holdings, and the current placement) for what they hold, with
// node_id set to the member so that it answers from its own store and asks
// no one further, and merges the answers with its own. Peer calls carry
// the node's cluster credential (Node.PeerCredential, PeerToken of the
// gossip key) and take at most 3 s each; the peers that did not answer are
// named in the Understudy-Partial response header. RemoteSegments, with
// a Fetch per segment that copies it with ReadSegment, serves clip
// exports and the node's backfill alike.
package api
