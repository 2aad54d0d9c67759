// Package clock is the time seam of the project: the protocol core reads time
// and arms timers only through a Clock, so that tests and the simulator can run
// whole networks on virtual time while real nodes use the wall clock.
package clock

import "time"

// Clock tells the time and runs functions later. Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f once, d from now, on a goroutine of the clock's
	// choosing (for a Virtual clock, the goroutine that advances it).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call armed by AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not run yet and reports whether it did.
	Stop() bool
}

// Real is the wall clock. Its zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc: the runtime's timer heap costs nothing while
// a timer waits, so an idle node burns no CPU.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
