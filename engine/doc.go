// Package engine is the node: the one place where Understudy is wired
// together. It owns the recording sessions (RTSP client per stream), the
// supervisor that reconciles them with the catalog, the event bus and the
// metrics, and builds the API server (package engine/api) over them.
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
// Package engine/api serves the API on the node's one port: the handlers
// of the Connect services, the plain HTTP endpoints, the bearer-token
// roles and the federated reads over the peers. It reaches the node only
// through api.Node (placement, stream statuses, live edges, settings,
// events, readiness), which the node implements in apinode.go, and the
// stores passed in api.Config; Node.Handler is its handler. The backfill
// loop copies the peers' segments through the same federation
// (api.Server.RemoteSegments). GET /metrics serves the node's registry:
// the names are the Metric* constants.
//
// WatchEvents streams the in-process EventBus. Publishing never blocks: a
// subscriber whose buffer (Config.EventBuffer) is full loses events, and
// the next event it gets carries details["events_dropped"].
package engine
