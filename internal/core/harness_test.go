package core

import (
	"crypto/sha1"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testNet is a network of real nodes on memnet, driven by a virtual clock
// from the test's goroutine: every run with the same seed is the same run.
type testNet struct {
	t     testing.TB
	clk   *clock.Virtual
	net   *memnet.Network
	nodes []*Node
	seed  uint64
}

func newTestNet(t testing.TB, seed uint64, cfg memnet.Config) *testNet {
	clk := clock.NewVirtual(epoch)
	cfg.Clock = clk
	cfg.Seed = seed
	if cfg.Latency == nil {
		cfg.Latency = memnet.Uniform(5*time.Millisecond, 25*time.Millisecond)
	}
	tn := &testNet{t: t, clk: clk, net: memnet.New(cfg), seed: seed}
	t.Cleanup(func() {
		for _, n := range tn.nodes {
			n.Close()
		}
	})
	return tn
}

// add starts a node; mod may adjust its config.
func (tn *testNet) add(mod func(*Config)) *Node {
	tn.t.Helper()
	cfg := Config{
		Transport: tn.net.NewEndpoint(),
		Clock:     tn.clk,
		Rand:      rand.New(rand.NewPCG(tn.seed, uint64(len(tn.nodes)))),
	}
	cfg.RequireTokens = requireTokens // token_test.go
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes = append(tn.nodes, n)
	return n
}

// await runs the network until *pending reaches zero, failing the test if
// that takes more than limit of virtual time.
func (tn *testNet) await(pending *int, limit time.Duration) {
	tn.t.Helper()
	deadline := tn.clk.Now().Add(limit)
	tn.clk.RunWhile(func() bool { return *pending > 0 }, deadline)
	if *pending > 0 {
		tn.t.Fatalf("%d operations still pending after %v of virtual time", *pending, limit)
	}
}

// bootstrapAll joins every node but the first through the first, one every
// `every` of virtual time, and waits for all joins.
func (tn *testNet) bootstrapAll(every time.Duration) {
	tn.t.Helper()
	seed := []netip.AddrPort{tn.nodes[0].Addr()}
	pending := len(tn.nodes) - 1
	for i, n := range tn.nodes[1:] {
		tn.clk.AfterFunc(time.Duration(i)*every, func() {
			n.Bootstrap(seed, func(r *BootstrapResult, err error) {
				if err != nil {
					tn.t.Errorf("node %d bootstrap: %v", i+1, err)
				}
				pending--
			})
		})
	}
	tn.await(&pending, time.Duration(len(tn.nodes))*every+time.Minute)
}

// putValue stores data in st as an anonymous value (publisher SHA-1 of the
// bytes, version 0), the way a legacy STORE does.
func putValue(st store.Store, key id.ID, data []byte, src netip.Addr, expires, now time.Time) error {
	return st.Put(key, store.Value{Publisher: sha1.Sum(data), Expires: expires, Data: data}, src, now)
}
