package main

import "github.com/understudy-nvr/understudy/engine"

// chaosFaults, set only in a binary built with the chaosfaults tag
// (faults_chaos.go), switches parts of a node off for the chaos suite's
// tests of its own checkers. In a normal build it is nil: no flag, file
// key or variable reaches it.
var chaosFaults func(*engine.Config)
