// Package harness runs the chaos suite's real processes: `understudy
// serve` nodes, each on its own loopback address (127.0.S.2, .3, ...,
// where S is the run's Subnet, so runs side by side do not meet) with its
// own data directory and failure domain, and the simulated cameras
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
// With more than one node the nodes form a cluster: one gossip key, each
// node gossiping on its own address and joining every other, each in its
// own failure domain (zone=zI/host=nI; Scenario.Zones puts several in
// one zone), streams created with R copies. A
// cluster run (clusterrun.go) waits until every node places every stream
// on R nodes that record it, runs the script while a sampler measures how
// long each stream has fewer than R live recorders, and then checks the
// final state through the API and the files: every stream ends with R
// live recorders as placed; every current home's own archive (GetTimeline
// with the home as node filter, class ARCHIVE) is whole over the episode
// after backfill; every stream exported through every node (a federated
// export) is frame-checked against the send log; and, every node stopped,
// `understudy fsck` is clean on every data directory. The multi-node
// scenarios are the cluster-* ones (clusterscenarios.go) and those of
// faults switched at run time (faultscenarios.go, faults.go): a node's
// disk and clock and a failure domain's gossip through control files a
// chaosfaults build reads, a flipped segment on disk, and camera outages
// through camsim's control file.
package harness
