// Package harness runs the chaos suite's real processes: `understudy
// serve` nodes, each on its own loopback address (127.0.0.2, .3, ...) with
// its own data directory and failure domain, and the simulated cameras
// (`understudy camsim` with a send log) in a process of their own.
//
// A Process can be killed (SIGKILL), stopped cleanly (SIGTERM), frozen
// (SIGSTOP) and thawed (SIGCONT), and restarted; the harness keeps the
// intervals each one was alive (ready and not frozen), and NoneAlive turns
// them into the windows no recorder was alive, which the frame checker
// excuses. A Scenario is a fault schedule in Go; RunScenario starts a
// cluster, adds a stream per camera through the API, runs the script,
// exports every stream over GET /v1/export and checks it against its
// camera's send log (package check). Scenarios lists the named ones.
//
// Only single nodes are recorded today. Config.NodeArgs adds per-node
// flags, so the nodes of a cluster (--gossip-listen, --join) need no
// change to the harness itself.
package harness
