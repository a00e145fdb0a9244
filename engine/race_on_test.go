//go:build race

package engine

// raceEnabled: the race detector is on (it makes media paths several
// times slower, so the tests at full size run without it).
const raceEnabled = true
