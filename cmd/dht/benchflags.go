package main

import (
	"fmt"
	"strings"
	"time"
)

// durationRange is a duration flag limited to [min, max].
type durationRange struct {
	v, min, max time.Duration
}

func (d *durationRange) String() string { return shortDur(d.v) }

func (d *durationRange) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < d.min || v > d.max {
		return fmt.Errorf("must be a duration from %s to %s, such as 500ms, 5s or 2m", shortDur(d.min), shortDur(d.max))
	}
	d.v = v
	return nil
}

// shortDur prints d without zero trailing units: 1h rather than 1h0m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
