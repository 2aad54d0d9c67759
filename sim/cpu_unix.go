//go:build unix

package sim

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used, user and system, on every
// thread (the garbage collector's included). With other programs competing
// for the cores it measures the simulation's cost better than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
