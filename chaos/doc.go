// Package chaos holds what tests and the demo use to put Understudy under
// realistic and faulty conditions. Nothing imports chaos but cmd and tests.
//
//   - camsim: simulated RTSP cameras; every frame carries its number and
//     time in an SEI stamp, and a send log (Config.SendLogDir) says what
//     each camera sent and skipped, and why.
//   - check: the frame checker: it parses an exported MP4, reads the
//     stamps and compares them with the send log, reporting lost,
//     duplicate, out-of-order and mistimed frames, with the camera's own
//     skips, the windows no recorder was alive, a killed node's part in
//     flight and a restarted node's wait for a keyframe counted apart.
//   - harness: real `understudy serve` processes on 127.0.0.x and a
//     camsim process, with SIGKILL, SIGTERM, SIGSTOP/SIGCONT and restart;
//     scenarios scripted in Go, run by RunScenario and `understudy chaos
//     run`. TestChaosKillRestart runs in the short suite; TestChaosLong
//     (CHAOS_LONG=1, make chaos) runs the long scenarios.
//
// Built for one node and for clusters of 3 and 4 nodes
// (clusterscenarios.go, faultscenarios.go), with the checkers shown to
// fail on nodes built with the chaosfaults tag that run no backfill,
// break before they make, or silently drop parts. The federated
// timeline's SOURCE/SYSTEM gaps are checked against the frames per
// stream. Faults switched at run time: in chaosfaults builds a gossip cut
// of one node or a failure domain, disk faults (blocked, EIO, ENOSPC)
// and a clock step; a flipped segment on disk; camera outages through
// camsim's control file (camera-flap).
package chaos
