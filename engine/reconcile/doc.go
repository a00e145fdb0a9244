// Package reconcile decides, for one node, which streams it records and in
// which role (home or replica). It is a pure state machine in the manner of
// etcd's raft: no goroutines, no network, no clock reads. Inputs arrive as
// calls, time included, and Step returns the actions the caller must apply
// to its sessions, so a scripted test can replay "node B died, 3 s passed,
// node B came back" exactly.
//
// Inputs: SetStreams (the enabled catalog), SetMembers (the live members as
// membership sees them at a time; an absent member is dead), Report (what a
// peer says it records, from gossip). Step(now) advances the machine and
// returns Start, ChangeRole and Stop actions sorted by stream ID; the caller
// calls it after every input and periodically, NextDeadline telling when
// the next timer ends. Placement and Roles expose the current state.
//
// Placement is placement.Place over the effective members and the streams,
// at Config.Level and then at "node" if that is refused. If placement is
// refused at both levels, or gives a stream no node (every member draining
// or saturated), every effective member records that stream: over-record,
// never under-record.
//
// Hysteresis: a member that disappears leaves placement at once, since its
// streams' replicas already record and failover must be fast. A member that
// appears or reappears counts only once it has been continuously present
// for Config.RejoinHold, so a flapping node moves nothing while it flaps.
// The members of the first SetMembers call count at once: at start there
// is no history to flap from, and holding them would make this node record
// every stream for RejoinHold.
// This node itself always counts; if membership omits it, its last known
// entry is used (or "host=<Self>", weight 1, active, before any).
//
// Role changes keep sessions: a replica promoted to home (or a home demoted
// to replica) gets a ChangeRole, never a Stop and a Start; only the class
// of what it records changes from that moment.
//
// Make-before-break: when this node loses its role for a stream that is
// still in the catalog, it keeps recording (in its old role) until every
// node now placed for the stream has reported recording it, or until
// Config.HandoffTimeout has passed since the loss, whichever is first. If
// the stream is placed back here before that, the pending stop is
// cancelled. A stream removed from the catalog stops at once.
package reconcile
