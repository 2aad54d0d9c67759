package core

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
)

// shortTTLNet is a network whose nodes keep a value at most a minute, so
// that only republishing keeps one alive for longer.
func shortTTLNet(t *testing.T, seed uint64, nodes int, mod func(*Config)) *testNet {
	tn := newTestNet(t, seed, memnet.Config{})
	for range nodes {
		tn.add(func(c *Config) {
			c.K = 8
			c.MaxTTL, c.MinTTL = time.Minute, 10*time.Second
			if mod != nil {
				mod(c)
			}
		})
	}
	tn.bootstrapAll(20 * time.Millisecond)
	return tn
}

// The paper's republish (section 2.5): the publisher stores its value
// again before the nodes' TTL runs out, for as long as the program keeps
// it alive, and the value is gone one TTL after the keep-alive stops.
func TestRepublishKeepsAValueAlivePastItsTTLUntilStopped(t *testing.T) {
	tn := shortTTLNet(t, 41, 30, nil)
	pub, reader := tn.nodes[3], tn.nodes[17]
	key := id.Key("alice@id.example.org:address")
	res, err := putRec(t, tn, pub, PutRequest{Key: key, Value: []byte("203.0.113.7:4000"), TTL: time.Hour, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	version := res.Version
	if res.Receipts[0].TTL != time.Minute {
		t.Fatalf("granted %v, want the nodes' MaxTTL of 1m", res.Receipts[0].TTL)
	}
	// Subscribed from another node: a republish is no change to report.
	var events []Event
	reader.Listen(key, func(e Event) { events = append(events, e) })
	tn.clk.RunFor(5 * time.Second)

	// Ten TTLs later the value is still there, at its first version.
	for range 10 {
		tn.clk.RunFor(time.Minute)
		r, err := get(t, tn, reader, key)
		if err != nil {
			t.Fatalf("at %v with the keep-alive on: %v", tn.clk.Now().Sub(epoch), err)
		}
		if r.Records[0].Version != version {
			t.Fatalf("republished as version %d, want the original %d", r.Records[0].Version, version)
		}
	}
	st := pub.Stats().KeepAlive
	// Every 30s (half the granted TTL) for 10 minutes, give or take one.
	if st.Active != 1 || st.Republished < 19 || st.Republished > 23 || st.Failed != 0 {
		t.Fatalf("keep-alive stats %+v, want 1 active and about 20 republishes", st)
	}
	if len(events) != 1 || events[0].Kind != EventPut {
		t.Fatalf("the listener saw %d events (%v), want the one put: a republish is no change", len(events), events)
	}

	ka := pub.KeepAlives()
	if len(ka) != 1 || ka[0].Request.Key != key || ka[0].Request.Version != version || ka[0].Next.IsZero() {
		t.Fatalf("KeepAlives() = %+v", ka)
	}

	if !pub.StopKeepAlive(key, id.ID{}) {
		t.Fatal("StopKeepAlive found no keep-alive")
	}
	if pub.StopKeepAlive(key, id.ID{}) {
		t.Fatal("a second StopKeepAlive found one")
	}
	tn.clk.RunFor(time.Minute + 5*time.Second)
	if _, err := get(t, tn, reader, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a TTL after the keep-alive stopped: %v, want ErrNotFound", err)
	}
	if n := pub.Stats().KeepAlive.Republished; n != st.Republished && n != st.Republished+1 {
		t.Fatalf("republished %d times after the stop (from %d)", n-st.Republished, st.Republished)
	}
}

// A republish that fails is retried with backoff (1s, 2s, 4s...), visible
// in Stats and KeepAlives, and the keep-alive carries on once the network
// is back.
func TestRepublishRetriesWithBackoff(t *testing.T) {
	tn := shortTTLNet(t, 42, 20, nil)
	pub := tn.nodes[5]
	key := id.Key("retried")
	if _, err := putRec(t, tn, pub, PutRequest{Key: key, Value: []byte("v"), TTL: time.Minute, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	// Cut the publisher off from everyone.
	var others []netip.AddrPort
	for _, n := range tn.nodes {
		if n != pub {
			others = append(others, n.Addr())
		}
	}
	tn.net.Partition([]netip.AddrPort{pub.Addr()}, others)
	tn.clk.RunFor(2 * time.Minute)
	st, ka := pub.Stats().KeepAlive, pub.KeepAlives()
	if st.Failed < 3 || ka[0].Failures < 3 || ka[0].LastError == "" {
		t.Fatalf("after 2 minutes cut off: %+v, %+v; want failed republishes", st, ka[0])
	}
	// The backoff grows: a handful of attempts in 90s, not one a second.
	if st.Failed > 12 {
		t.Fatalf("%d failed republishes in 90s: the retries do not back off", st.Failed)
	}
	tn.net.Heal()
	tn.clk.RunFor(maxRepublishBackoff + time.Minute)
	if ka := pub.KeepAlives(); ka[0].Failures != 0 || ka[0].LastError != "" {
		t.Fatalf("healed: %+v; want the failures cleared by a success", ka[0])
	}
	if _, err := get(t, tn, tn.nodes[11], key); err != nil {
		t.Fatalf("after the network healed: %v", err)
	}
}

// Adversarial: the keep-alive table is bounded, with an error that names
// the setting; replacing a keep-alive does not count twice; a put without
// KeepAlive and a Delete end one.
func TestKeepAliveBound(t *testing.T) {
	tn := shortTTLNet(t, 43, 12, func(c *Config) { c.MaxKeepAlives = 2 })
	n := tn.nodes[2]
	put := func(k string, keep bool) error {
		_, err := putRec(t, tn, n, PutRequest{Key: id.Key(k), Value: []byte(k), TTL: time.Minute, KeepAlive: keep})
		return err
	}
	for _, k := range []string{"a", "b", "a"} { // "a" again replaces its own
		if err := put(k, true); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	err := put("c", true)
	if !errors.Is(err, ErrKeepAliveLimit) || !strings.Contains(err.Error(), "Config.MaxKeepAlives is 2") {
		t.Fatalf("third keep-alive: %v, want ErrKeepAliveLimit naming Config.MaxKeepAlives", err)
	}
	if got := len(n.KeepAlives()); got != 2 {
		t.Fatalf("%d keep-alives, want 2", got)
	}
	// A put of "a" without KeepAlive is the program's new value: it ends
	// the keep-alive of the old one.
	if err := put("a", false); err != nil {
		t.Fatal(err)
	}
	pending := 1
	n.Delete(DeleteRequest{Key: id.Key("b")}, func(*DeleteResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	if got := n.KeepAlives(); len(got) != 0 {
		t.Fatalf("after a plain put and a delete: %d keep-alives left", len(got))
	}
	for _, k := range []string{"c", "d"} {
		if err := put(k, true); err != nil {
			t.Fatalf("put %s after room was made: %v", k, err)
		}
	}
	tn.clk.RunFor(3 * time.Minute)
	if _, err := get(t, tn, tn.nodes[7], id.Key("b")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted keep-alive's value: %v, want ErrNotFound", err)
	}
}

// A keep-alive whose value another program of the same publisher replaced
// with a newer version ends at its next republish: every node refuses the
// old version as stale, and it must not fight the new one.
func TestKeepAliveEndsWhenSuperseded(t *testing.T) {
	var ended []error
	tn := shortTTLNet(t, 44, 20, nil)
	a, b := tn.nodes[4], tn.nodes[9]
	a.cfg.KeepAliveEnded = func(_, _ id.ID, err error) { ended = append(ended, err) }
	key, pub := id.Key("shared"), id.Key("publisher P")
	if _, err := putRec(t, tn, a, PutRequest{Key: key, Value: []byte("old"), TTL: time.Minute, Publisher: pub, Version: 1, KeepAlive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := putRec(t, tn, b, PutRequest{Key: key, Value: []byte("new"), TTL: time.Minute, Publisher: pub, Version: 2}); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(45 * time.Second)
	if len(ended) != 1 || !errors.Is(ended[0], ErrSuperseded) || len(a.KeepAlives()) != 0 || a.Stats().KeepAlive.Superseded != 1 {
		t.Fatalf("ended %v, %d keep-alives left; want one end with ErrSuperseded", ended, len(a.KeepAlives()))
	}
	r, err := get(t, tn, tn.nodes[15], key)
	if err != nil || string(r.Records[0].Data) != "new" {
		t.Fatalf("get: %v %v, want the new version", r, err)
	}
}

// Many keep-alives restored at once are spread over restoreSpread and
// never run more than maxRepublishing republishes at a time.
func TestRestoredKeepAlivesAreSpread(t *testing.T) {
	tn := shortTTLNet(t, 45, 20, func(c *Config) { c.MaxKeepAlives = 200 })
	n := tn.nodes[1]
	for i := range 200 {
		req := PutRequest{Key: id.Key(fmt.Sprint("restored ", i)), Value: []byte("v"), TTL: time.Minute, Publisher: n.ID(), Version: 7}
		if err := n.RestoreKeepAlive(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.RestoreKeepAlive(PutRequest{Key: id.Key("x"), Value: []byte("v"), TTL: time.Minute}); err == nil {
		t.Fatal("a restored keep-alive without publisher and version was taken")
	}
	peak := 0
	deadline := tn.clk.Now().Add(restoreSpread + 10*time.Second) // the spread, and time for the last puts
	for tn.clk.Now().Before(deadline) && tn.clk.Step() {
		n.mu.Lock()
		peak = max(peak, n.keep.running)
		n.mu.Unlock()
	}
	if peak > maxRepublishing {
		t.Fatalf("%d republishes at once, bound %d", peak, maxRepublishing)
	}
	done := 0
	for _, ka := range n.KeepAlives() {
		if ka.Republished > 0 {
			done++
		}
	}
	if done != 200 {
		t.Fatalf("%d of the 200 restored keep-alives republished within %v", done, restoreSpread+10*time.Second)
	}
}

// The point of republishing under churn: every node that held the value
// leaves, and the publisher's next republish puts it on the key's new K
// closest, where a get finds it; a value put without a keep-alive is lost
// the same way.
func TestRepublishRestoresAValueAfterItsHoldersLeft(t *testing.T) {
	// Replication on, as nodes run. With this seed the reader's table
	// lists seven of the departed holders as its closest contacts to the
	// key, and so do the live nodes near them that it asks: its lookup
	// must reach past them into its table (topUp in ops.go) to find a node
	// that knows the key's live neighbours.
	tn := shortTTLNet(t, 46, 60, nil)
	pub := tn.nodes[0]
	kept, plain := id.Key("kept"), id.Key("plain")
	for _, k := range []id.ID{kept, plain} {
		if _, err := putRec(t, tn, pub, PutRequest{Key: k, Value: []byte("v"), TTL: time.Minute, KeepAlive: k == kept}); err != nil {
			t.Fatal(err)
		}
	}
	gone := 0
	for _, n := range tn.nodes[1:] {
		_, a := n.Store().Lookup(kept, pub.ID(), tn.clk.Now())
		_, b := n.Store().Lookup(plain, pub.ID(), tn.clk.Now())
		if a || b {
			n.Close()
			gone++
		}
	}
	if _, ok := pub.Store().Lookup(kept, pub.ID(), tn.clk.Now()); ok {
		t.Fatal("the publisher is among the K closest: the test would prove nothing")
	}
	tn.clk.RunFor(time.Minute) // a republish, after the publisher notices the departures
	reader := tn.nodes[len(tn.nodes)-1]
	for reader.closedNow() {
		reader = tn.nodes[len(tn.nodes)-2]
	}
	// The reader's first lookup may spend itself on the departed holders,
	// which its table still lists closest (marking them failed is the
	// routing table's business); the second goes past them.
	_, _ = get(t, tn, reader, kept)
	if r, err := get(t, tn, reader, kept); err != nil || string(r.Records[0].Data) != "v" {
		t.Fatalf("the kept value after its %d holders left: %v %v", gone, r, err)
	}
	if st := pub.Stats().KeepAlive; st.Republished < 2 {
		t.Fatalf("keep-alive stats %+v: the value came back without a republish?", st)
	}
	_, _ = get(t, tn, reader, plain)
	if _, err := get(t, tn, reader, plain); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoPeers) {
		t.Fatalf("the value without a keep-alive: %v, want ErrNotFound from live nodes (the test's premise)", err)
	}
}

func (n *Node) closedNow() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}
