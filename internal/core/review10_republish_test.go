package core

import (
	"testing"
	"time"

	"github.com/dhtkit/dht/transport/memnet"
)

// One node among a key's K closest that grants a kept-alive value a TTL of
// 1s (hostile, or configured with MaxTTL = 1s) must not make the publisher
// republish every second: a republish is a lookup and K puts, and a
// thousand keep-alives near such nodes would hammer the network. The
// publisher follows the shortest grant, but never below its own MinTTL.
func TestReview10OneShortGrantDoesNotMakeTheKeepAliveHammer(t *testing.T) {
	tn := newTestNet(t, 1010, memnet.Config{})
	for i := range 20 {
		tn.add(func(c *Config) {
			c.K = 8
			c.MaxTTL, c.MinTTL = time.Minute, 10*time.Second
			if i == 7 {
				// A node that keeps values one second.
				c.MaxTTL, c.MinTTL = time.Second, time.Second
			}
		})
	}
	tn.bootstrapAll(20 * time.Millisecond)
	short := tn.nodes[7]
	tn.clk.RunFor(10 * time.Second)

	pub := tn.nodes[4]
	key := short.self // it is the closest, always among the targets
	res, err := putRec(t, tn, pub, PutRequest{Key: key, Value: []byte("v"), TTL: time.Hour, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	sawShort := false
	for _, r := range res.Receipts {
		if r.Node.ID == short.self && r.Outcome == Accepted && r.TTL == time.Second {
			sawShort = true
		}
	}
	if !sawShort {
		t.Fatalf("the short-TTL node did not grant 1s: %+v", res.Receipts)
	}
	before := pub.Stats().KeepAlive.Republished
	tn.clk.RunFor(5 * time.Minute)
	got := pub.Stats().KeepAlive.Republished - before
	// MinTTL is 10s on the publisher: at most one republish every 5s, 60 in
	// 5 minutes; following the 1s grant gives about 300.
	if got > 62 {
		t.Fatalf("%d republishes in 5 minutes: one node's 1s grant sets the pace", got)
	}
	if got < 1 {
		t.Fatalf("no republish in 5 minutes (the nodes grant at most 1m)")
	}
}
