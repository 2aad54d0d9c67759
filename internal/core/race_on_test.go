//go:build race

package core

// raceEnabled shrinks the single-threaded scenario tests under the race
// detector, which slows them twentyfold without having anything to find
// there (everything runs on the virtual clock's goroutine). The full-size
// runs happen in the ordinary test run.
const raceEnabled = true
