package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/sim"
)

// Flag values for dht sim. Unlike those in flags.go they write through a
// pointer into a sim.Scenario, so that the same flags can be applied over a
// scenario file (see runSim).

// intVar is an integer flag limited to [min, max].
type intVar struct {
	p        *int
	min, max int
}

func (v intVar) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v intVar) Set(s string) error {
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("must be a whole number from %d to %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

// floatVar is a number flag limited to [min, max]; what describes it in
// the error message.
type floatVar struct {
	p        *float64
	min, max float64
	what     string
}

func (v floatVar) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v floatVar) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < v.min || f > v.max {
		return fmt.Errorf("must be %s from %v to %v", v.what, v.min, v.max)
	}
	*v.p = f
	return nil
}

// durVar is a duration flag limited to [min, max].
type durVar struct {
	p        *sim.Duration
	min, max time.Duration
}

func (v durVar) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v durVar) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < v.min || d > v.max {
		return fmt.Errorf("must be a duration from %v to %v, such as 30s or 10m", v.min, v.max)
	}
	*v.p = sim.Duration(d)
	return nil
}

// latencyVar is a latency model in the text form sim.ParseLatency reads.
type latencyVar struct{ p *sim.Latency }

func (v latencyVar) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v latencyVar) Set(s string) error {
	l, err := sim.ParseLatency(s)
	if err != nil {
		return fmt.Errorf("must be %s", sim.LatencyForms)
	}
	*v.p = l
	return nil
}

// maliciousVar reads the malicious settings' text form (see
// sim.ParseMalicious).
type maliciousVar struct{ p *sim.Malicious }

func (v maliciousVar) String() string {
	if v.p == nil || len(*v.p) == 0 {
		return ""
	}
	parts := make([]string, len(*v.p))
	for i, m := range *v.p {
		parts[i] = m.String()
	}
	return strings.Join(parts, ";")
}

func (v maliciousVar) Set(s string) error {
	m, err := sim.ParseMalicious(s)
	if err != nil {
		return err
	}
	*v.p = m
	return nil
}

// progressMode is how dht sim shows its progress.
type progressMode struct{ v string }

func (m *progressMode) String() string { return m.v }

func (m *progressMode) Set(s string) error {
	switch s {
	case "auto", "bar", "lines", "none":
		m.v = s
		return nil
	}
	return fmt.Errorf("must be auto (a bar on a terminal, lines otherwise), bar, lines or none")
}
