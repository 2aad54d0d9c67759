//go:build unix

package bench

import (
	"syscall"
	"time"
)

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// fdLimit returns the soft limit on open files, raising it to the hard
// limit first when that helps (the Go runtime usually has already).
func fdLimit(need uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < need && l.Max > l.Cur {
		r := l
		r.Cur = min(need, l.Max)
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r) == nil {
			l = r
		}
	}
	return l.Cur, nil
}
