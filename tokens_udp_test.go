package dht

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dhtkit/dht/wire"
)

// Write tokens over real UDP on 127.0.0.1: nodes that require them put and
// get as usual, and a socket of its own that writes to one of them is
// refused until it sends the token the refusal handed its address.
func TestUDPNodesRequiringTokens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := make([]*Node, 12)
	for i := range ns {
		ns[i] = loopbackNode(t, func(c *Config) { c.RequireTokens = true })
	}
	for _, n := range ns[1:] {
		if err := n.Bootstrap(ctx, ns[0].Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	key := Key("udp tokens")
	pr, err := ns[3].Put(ctx, key, []byte("v"), WithTTL(time.Hour))
	if err != nil || pr.Stored < len(ns)-1 {
		t.Fatalf("put: stored on %d of %d, %v", pr.Stored, len(ns), err)
	}
	if r, err := ns[7].Get(ctx, key); err != nil || len(r.Values) != 1 || string(r.Values[0].Data) != "v" {
		t.Fatalf("get: %+v %v", r, err)
	}

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := net.UDPAddrFromAddrPort(ns[5].Addr())
	ask := func(m wire.Message) wire.Message {
		t.Helper()
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		for range 5 { // a loopback datagram may be dropped under load
			if _, err := conn.WriteToUDP(b, to); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				continue
			}
			var out wire.Message
			if wire.Decode(buf[:n], &out) == nil && out.TxID == m.TxID {
				return out
			}
		}
		t.Fatalf("no answer to the %s", m.Type)
		return wire.Message{}
	}
	put := wire.Message{Type: wire.Put, TxID: 99, Sender: Key("raw writer"), Target: Key("raw"), Publisher: Key("raw writer"),
		Version: 1, TTL: 600, Size: 1, Value: []byte("r")}
	out := ask(put)
	if out.Type != wire.Error || out.Code != wire.CodeToken || out.Flags&wire.FlagToken == 0 {
		t.Fatalf("a PUT without a token: %s code %d flags %d", out.Type, out.Code, out.Flags)
	}
	put.Flags, put.Token = wire.FlagToken, out.Token
	if out := ask(put); out.Type != wire.PutOK {
		t.Fatalf("the PUT with the refusal's token: %s code %d %q", out.Type, out.Code, out.Text)
	}
}
