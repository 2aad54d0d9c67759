package main

import (
	"context"
	"io"
	"time"

	"github.com/dhtkit/dht/bench"
)

// runBenchFlood is dht bench flood: bench.RunFlood with flags.
func runBenchFlood(args []string, stdout, stderr io.Writer) int {
	f := newBenchFlags("flood", stderr)
	fs := f.fs
	d := bench.DefaultFloodConfig()
	clients := intRange{v: d.Clients, min: 1, max: 254}
	clientRate := intRange{v: d.ClientRate, min: 1, max: 1_000_000}
	limit := intRange{v: d.RateLimit, min: 1, max: 1_000_000}
	factor := intRange{v: d.Factor, min: 1, max: 10_000}
	duration := durationRange{v: d.Duration, min: 100 * time.Millisecond, max: time.Hour}
	rounds := intRange{v: d.Rounds, min: 1, max: 100}
	timeout := durationRange{v: d.Timeout, min: time.Millisecond, max: time.Minute}
	keys := intRange{v: d.Keys, min: 1, max: 1_000_000}
	fs.Var(&clients, "clients", "normal clients, each a socket on a loopback address of its own (127.77.0.x), 1 to 254")
	fs.Var(&clientRate, "client-rate", "requests per second each client offers (FIND_NODE and GET in turn), below -rate-limit")
	fs.Var(&limit, "rate-limit", "the node's limit in requests per second per source host (its burst is twice that)")
	fs.Var(&factor, "factor", "the flooder's rate (from 127.78.0.1) as a multiple of -rate-limit")
	fs.Var(&duration, "duration", "length of each measurement; the flooder stops at its end")
	fs.Var(&rounds, "rounds", "rounds of the three measurements (no flood, flood, flood with the limit off); medians are reported (1 to 100)")
	fs.Var(&timeout, "request-timeout", "an answer later than this after its request does not count as served")
	fs.Var(&keys, "keys", "keys the node holds, which the GETs ask for")
	if code, ok := f.parse(args); !ok {
		return code
	}
	cfg := bench.FloodConfig{
		Clients: clients.v, ClientRate: clientRate.v, RateLimit: limit.v, Factor: factor.v,
		Duration: duration.v, Rounds: rounds.v, Timeout: timeout.v, Keys: keys.v, Seed: f.seed, Progress: stderr,
	}
	return f.execute(stdout, stderr, func(ctx context.Context) (report, bool, error) {
		r, err := bench.RunFlood(ctx, cfg)
		if err != nil {
			return nil, false, err
		}
		return r, false, nil
	})
}
