// Package chaos holds what tests and the demo use to put Understudy under
// realistic and faulty conditions: simulated cameras, fault injection and
// invariant checkers. Nothing imports chaos but cmd and tests.
package chaos
