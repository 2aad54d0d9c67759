package dht

import (
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport/memnet"
)

// Config.DisjointPaths reaches the node's core, and a value out of range
// stops New with a message naming the field and what is allowed.
func TestDisjointPathsIsPassedToTheNode(t *testing.T) {
	vc := clock.NewVirtual(time.Unix(0, 0))
	net := memnet.New(memnet.Config{Clock: vc})
	cfg := DefaultConfig()
	cfg.Transport = net.NewEndpoint()
	cfg.Clock = vc
	cfg.DisjointPaths = 4
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got := n.c.Config().DisjointPaths; got != 4 {
		t.Fatalf("core DisjointPaths %d, want 4", got)
	}
	for _, bad := range []int{-1, 17} {
		cfg.DisjointPaths = bad
		cfg.Transport = net.NewEndpoint()
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Config.DisjointPaths") || !strings.Contains(err.Error(), "between 0 (one lookup) and 16") {
			t.Errorf("DisjointPaths %d: %v", bad, err)
		}
	}
}
