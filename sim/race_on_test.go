//go:build race

package sim

// raceEnabled shrinks the simulated networks under the race detector, which
// slows the single-goroutine simulation twentyfold without having anything
// to find in it (every node runs on the virtual clock's goroutine). The
// full-size runs happen in the ordinary test run.
const raceEnabled = true
