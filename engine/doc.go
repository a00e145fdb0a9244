// Package engine is the node: the one place where Understudy is wired
// together. It owns recording sessions (RTSP client per stream), and later
// membership, the catalog, the reconcile loop, the API server and metrics.
package engine
