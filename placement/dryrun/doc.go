// Package dryrun is the engine of the `understudy placement` tool: it reads
// a topology (YAML) and streams (CSV, or a count), places them with package
// placement, runs what-if scenarios (nodes failing, joining, draining) and
// prints a report in the spirit of OpenStack Swift's ring builder: per node
// target, assigned load, balance and homes; per tier dispersion; and for
// each scenario the copies moved against the optimum.
//
// Parsing is strict: unknown fields, duplicate ids, non-positive weights and
// malformed domains are errors that name the line or the node, wrapping
// ErrBadInput.
package dryrun
