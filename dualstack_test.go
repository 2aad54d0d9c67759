package dht

import (
	"context"
	"net"
	"testing"
	"time"
)

func canListenIPv6(t *testing.T) {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("this machine cannot bind [::1]: %v", err)
	}
	c.Close()
}

// A node listening on 127.0.0.1 and [::1] joins an IPv4-only node and an
// IPv6-only node into one network: it hands each the other's contact, whose
// address family the receiver cannot reach, and still relays their values.
func TestDualStackNodeBridgesIPv4AndIPv6(t *testing.T) {
	canListenIPv6(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dual := loopbackNode(t, func(c *Config) { c.Listen = []string{"127.0.0.1:0", "[::1]:0"} })
	v4 := loopbackNode(t, nil)
	v6 := loopbackNode(t, func(c *Config) { c.Listen = []string{"[::1]:0"} })
	var dualV6 string
	for _, a := range dual.Addrs() {
		if a.Addr().Is6() {
			dualV6 = a.String()
		}
	}
	if dualV6 == "" {
		t.Fatalf("dual-stack node has no IPv6 address: %v", dual.Addrs())
	}
	if err := v4.Bootstrap(ctx, dual.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := v6.Bootstrap(ctx, dualV6); err != nil {
		t.Fatal(err)
	}
	if _, err := v4.Put(ctx, Key("from v4"), []byte("hello over IPv4"), time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := v6.Get(ctx, Key("from v4"))
	if err != nil || len(got.Values) != 1 || string(got.Values[0]) != "hello over IPv4" {
		t.Fatalf("IPv6 node's get: %q, %v", got, err)
	}
	// The dual-stack node knows both by their own families.
	fams := map[bool]bool{}
	for _, c := range dual.Contacts() {
		fams[c.Addr.Addr().Is4()] = true
	}
	if !fams[true] || !fams[false] {
		t.Fatalf("dual-stack node's table: %v", dual.Contacts())
	}
}
