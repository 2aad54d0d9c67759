package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Flag values that check what they are given, so that a bad value stops the
// command with a message naming the flag and what it allows.

// hostPorts is a comma-separated list of host:port addresses.
type hostPorts []string

func (h *hostPorts) String() string { return strings.Join(*h, ",") }

func (h *hostPorts) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if err := checkHostPort(a); err != nil {
			return err
		}
		*h = append(*h, a)
	}
	return nil
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || (strings.Contains(host, ":") && !strings.HasPrefix(a, "[")) {
		return fmt.Errorf("%q is not HOST:PORT (e.g. 127.0.0.1:4000 or [::1]:4000)", a)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || fmt.Sprint(p) != port {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", a)
	}
	if host == "" {
		return fmt.Errorf("%q: host is missing (use 0.0.0.0 for every IPv4 interface)", a)
	}
	return nil
}

// intRange is an integer flag limited to [min, max].
type intRange struct {
	v, min, max int
}

func (r *intRange) String() string { return strconv.Itoa(r.v) }

func (r *intRange) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < r.min || v > r.max {
		return fmt.Errorf("must be a whole number from %d to %d", r.min, r.max)
	}
	r.v = v
	return nil
}

// positiveDuration is a duration flag that must be above zero.
type positiveDuration struct{ v time.Duration }

func (d *positiveDuration) String() string { return d.v.String() }

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("must be a positive duration such as 30s, 10m or 24h")
	}
	d.v = v
	return nil
}

// networkID is a 32-bit network number, decimal or 0x-hexadecimal.
type networkID struct{ v uint32 }

func (n *networkID) String() string { return strconv.FormatUint(uint64(n.v), 10) }

func (n *networkID) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("must be a number from 0 to 4294967295 (decimal or 0x hex)")
	}
	n.v = uint32(v)
	return nil
}
