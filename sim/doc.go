// Package sim is the deterministic simulator: it runs the real node code
// (internal/core) for many nodes on an in-memory network (transport/memnet)
// driven by a virtual clock (clock.Virtual), all on one goroutine, so that a
// scenario and its seed fully determine the result.
//
// A run has phases: nodes join through a few seeds, staggered in virtual
// time; keys are stored from random nodes; random nodes look up random
// stored keys; then, when the scenario asks for them, a churn phase (nodes
// leave and join while probes measure the share of keys still found) and a
// partition phase (a share of the nodes is cut off, then healed). The Report
// gives success rates, rounds, messages and latency per lookup, routing
// table sizes, network counters and, outside its JSON form, how fast the
// simulation ran and how much memory each node took.
//
// Scenario files for the common cases are in testdata/; the dht sim command
// runs them (dht sim --scenario sim/testdata/small.json).
package sim
