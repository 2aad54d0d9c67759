//go:build !unix

package bench

import (
	"errors"
	"time"
)

func cpuTime() (time.Duration, error) {
	return 0, errors.New("bench: CPU time is only measured on Unix systems")
}

// fdLimit: without rlimits, assume room; opening sockets reports the truth.
func fdLimit(need uint64) (uint64, error) { return need, nil }
