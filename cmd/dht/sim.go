package main

import (
	"fmt"
	"io"
)

// runSim is written by the simulator's change; until then it says so.
func runSim(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dht sim: not built yet")
	return exitFailure
}
