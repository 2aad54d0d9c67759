package core

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// ask hands request m to n as if it came from from, and returns n's answer
// (the zero Message when there is none).
func ask(t *testing.T, n *Node, m wire.Message, from netip.AddrPort) wire.Message {
	t.Helper()
	m.Network = n.cfg.Network
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var w transport.Batch
	n.HandlePacket(b, from, &w)
	var out wire.Message
	if w.Len() == 0 {
		return out
	}
	if err := wire.Decode(w.Packets()[len(w.Packets())-1].Data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStatsCountRequestsSentByTypeAndOutcome(t *testing.T) {
	tn := newTestNet(t, 11, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
	a, b := tn.add(nil), tn.add(nil)
	pending := 2
	a.Ping(b.Addr(), func(_ id.Contact, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	a.Ping(netip.MustParseAddrPort("127.9.9.9:4000"), func(_ id.Contact, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("ping of nobody: %v", err)
		}
		pending--
	})
	// A ping canceled before its answer is abandoned.
	cancel := a.Ping(netip.MustParseAddrPort("127.9.9.8:4000"), func(id.Contact, error) {})
	cancel()
	tn.await(&pending, time.Minute)

	st := a.Stats()
	got := st.Sent["PING"]
	want := RequestCounts{Sent: 1 + 2 + 1, Answered: 1, Timeouts: 1, Abandoned: 1} // the silent one was sent twice (Attempts 2)
	if got != want {
		t.Fatalf("Sent[PING] = %+v, want %+v", got, want)
	}
	if st.Sent["FIND_NODE"] != (RequestCounts{}) {
		t.Fatalf("Sent[FIND_NODE] = %+v, want zero", st.Sent["FIND_NODE"])
	}
	other := st.Latency["other"]
	if other.Count != 1 {
		t.Fatalf("other latency has %d observations, want 1: %+v", other.Count, other)
	}
	// 10ms each way on memnet: the round trip is 20ms, in (10ms, 25ms].
	i := 0
	for other.Bounds[i] < 0.020 {
		i++
	}
	if other.Counts[i] != 1 || other.Bounds[i] != 0.025 || other.Sum != 0.020 {
		t.Fatalf("the 20ms round trip is not in the (10ms, 25ms] bucket: %+v", other)
	}
	if st.Latency["lookup"].Count != 0 || st.Latency["store"].Count != 0 {
		t.Fatal("a ping was counted in another group")
	}
	if bs := b.Stats(); bs.Served["PING"] != 1 {
		t.Fatalf("b served %d PINGs, want 1", bs.Served["PING"])
	}
}

func TestStatsCountLookupsTheirRoundsAndTheTable(t *testing.T) {
	tn := newTestNet(t, 12, memnet.Config{})
	for range 30 {
		tn.add(nil)
	}
	tn.bootstrapAll(10 * time.Millisecond)
	n := tn.nodes[7]
	before := n.Stats().Lookups["node"]
	pending := 2
	n.FindNode(id.Random(rand.New(rand.NewPCG(1, 2))), func(_ *LookupResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	n.Get(id.Key("absent"), func(_ *LookupResult, err error) { pending-- })
	tn.await(&pending, time.Minute)
	st := n.Stats()
	node, value := st.Lookups["node"], st.Lookups["value"]
	if node.Started != before.Started+1 || node.Complete != before.Complete+1 {
		t.Fatalf("node lookups: %+v, before %+v: want one more started and complete", node, before)
	}
	if value.Started != 1 || value.Complete+value.Incomplete != 1 {
		t.Fatalf("value lookups: %+v, want one started and ended", value)
	}
	ended := node.Complete + node.Incomplete + node.NoAnswer
	if node.Rounds.Count != ended || node.Queried.Count != ended || node.Duration.Count != ended {
		t.Fatalf("histograms hold %d, %d, %d lookups; %d ended", node.Rounds.Count, node.Queried.Count, node.Duration.Count, ended)
	}
	if node.Rounds.Sum < float64(ended) || node.Messages < uint64(node.Queried.Sum) {
		t.Fatalf("every lookup has a round and asks its contacts: %+v", node)
	}
	if lk := st.Latency["lookup"]; lk.Count == 0 || lk.Count != st.Sent["FIND_NODE"].Answered+st.Sent["GET"].Answered+st.Sent["GET"].Refused+st.Sent["FIND_NODE"].Refused {
		t.Fatalf("lookup latency holds %d round trips, sent %+v", lk.Count, st.Sent)
	}
	sum := 0
	for _, c := range st.BucketSizes {
		sum += c
	}
	if len(st.BucketSizes) != st.Buckets || sum != st.TableSize || sum == 0 {
		t.Fatalf("bucket sizes %v (%d buckets) do not add up to the table's %d contacts", st.BucketSizes, st.Buckets, st.TableSize)
	}
}

// The store bounds share one wire code (full); the counters tell them apart.
func TestStatsCountStoreRefusalsByReason(t *testing.T) {
	tn := newTestNet(t, 13, memnet.Config{})
	srv := tn.add(func(c *Config) {
		c.StoreLimits = store.Limits{MaxValueSize: 100, MaxPerKey: 1, MaxPerPublisher: 1, MaxValues: 2}
	})
	src := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 4000)
	}
	pub := func(i byte) id.ID { return id.ID{i} }
	put := func(key string, p byte, version uint64, ttl uint32, data []byte) wire.Message {
		return wire.Message{Type: wire.Put, TxID: rand.Uint64(), Sender: id.ID{0xee, p}, Target: id.Key(key),
			Publisher: pub(p), Version: version, TTL: ttl, Size: uint32(len(data)), Value: data}
	}
	val := []byte("v")
	cases := []struct {
		name   string
		m      wire.Message
		from   int
		answer wire.Type
		reason string
	}{
		{"first", put("k1", 1, 5, 60, val), 1, wire.PutOK, ""},
		{"second key's publisher", put("k1", 2, 5, 60, val), 2, wire.Error, "key_full"},
		{"publisher's second key", put("k2", 1, 5, 60, val), 1, wire.Error, "quota"},
		{"another", put("k3", 3, 5, 60, val), 3, wire.PutOK, ""},
		{"a third record", put("k4", 4, 5, 60, val), 4, wire.Error, "store_full"},
		{"older version", put("k1", 1, 4, 60, val), 1, wire.Error, "stale"},
		{"too large", put("k5", 5, 1, 60, make([]byte, 101)), 5, wire.Error, "too_large"},
		{"no ttl", put("k5", 5, 1, 0, val), 5, wire.Error, "bad_ttl"},
		{"empty", put("k5", 5, 1, 60, nil), 5, wire.Error, "other"},
		{"legacy store, no ttl", wire.Message{Type: wire.Store, TxID: 9, Sender: id.ID{0xef}, Target: id.Key("k6"), Value: val}, 6, wire.Error, "bad_ttl"},
	}
	want := map[string]uint64{}
	for _, c := range cases {
		got := ask(t, srv, c.m, src(c.from))
		if got.Type != c.answer {
			t.Fatalf("%s: answered %v (%d %q), want %v", c.name, got.Type, got.Code, got.Text, c.answer)
		}
		if c.reason != "" {
			want[c.reason]++
		}
	}
	st := srv.Stats()
	for _, r := range RefusalReasons {
		if st.StoreRefusals[r] != want[r] {
			t.Errorf("StoreRefusals[%s] = %d, want %d", r, st.StoreRefusals[r], want[r])
		}
	}
	if st.StoresRefused != 8 || st.ErrorsSent["full"] != 3 || st.ErrorsSent["stale"] != 1 || st.ErrorsSent["bad_ttl"] != 2 {
		t.Errorf("refused %d, errors sent %v", st.StoresRefused, st.ErrorsSent)
	}
	if st.StoredValues != 2 || st.StoredBytes != 2 {
		t.Errorf("store holds %d records, %d bytes; want 2 and 2", st.StoredValues, st.StoredBytes)
	}
	// An ERROR that is no store refusal is counted by code only.
	ask(t, srv, wire.Message{Type: wire.Fetch, TxID: 3, Sender: id.ID{0xed}, Target: id.Key("k9")}, src(7))
	if st2 := srv.Stats(); st2.ErrorsSent["not_found"] != 1 || st2.StoreRefusals["other"] != st.StoreRefusals["other"] {
		t.Errorf("after a FETCH miss: errors sent %v, refusals %v", st2.ErrorsSent, st2.StoreRefusals)
	}
}

func TestStatsCountRefusalsOfThisNodesRequests(t *testing.T) {
	tn := newTestNet(t, 14, memnet.Config{})
	a, b := tn.add(nil), tn.add(nil)
	pending := 1
	a.Bootstrap([]netip.AddrPort{b.Addr()}, func(_ *BootstrapResult, err error) { pending-- })
	tn.await(&pending, time.Minute)
	// Version 2, then 1: b refuses the second as stale.
	for _, v := range []uint64{2, 1} {
		pending = 1
		a.PutRecord(PutRequest{Key: id.Key("k"), Value: []byte("x"), TTL: time.Hour, Version: v}, func(*PutResult, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	st := a.Stats()
	if p := st.Sent["PUT"]; p.Answered != 1 || p.Refused != 1 || p.Sent != 2 {
		t.Fatalf("Sent[PUT] = %+v, want one answered and one refused", p)
	}
	if st.RequestErrors["stale"] != 1 {
		t.Fatalf("RequestErrors = %v, want stale: 1", st.RequestErrors)
	}
	if st.Latency["store"].Count != 2 {
		t.Fatalf("store latency holds %d round trips, want 2", st.Latency["store"].Count)
	}
	if bs := b.Stats(); bs.StoreRefusals["stale"] != 1 {
		t.Fatalf("b's refusals: %v", bs.StoreRefusals)
	}
}

func TestStatsCountListenersSubscriptionsAndReadOnlyDrops(t *testing.T) {
	tn := newTestNet(t, 15, memnet.Config{})
	srv := tn.add(nil)
	client := tn.add(func(c *Config) { c.ReadOnly = true })
	pending := 1
	client.Bootstrap([]netip.AddrPort{srv.Addr()}, func(_ *BootstrapResult, err error) { pending-- })
	tn.await(&pending, time.Minute)
	cancel := client.Listen(id.Key("k"), func(Event) {})
	defer cancel()
	tn.clk.RunFor(5 * time.Second)
	if st := client.Stats(); st.Subscriptions != 1 {
		t.Fatalf("client has %d subscriptions, want 1", st.Subscriptions)
	}
	if st := srv.Stats(); st.Listeners != 1 {
		t.Fatalf("server holds %d listeners, want 1", st.Listeners)
	}
	before := client.Stats().ReadOnlyDropped
	ask(t, client, wire.Message{Type: wire.FindNode, TxID: 1, Sender: id.ID{1}}, netip.MustParseAddrPort("10.1.1.1:4000"))
	if got := client.Stats().ReadOnlyDropped; got != before+1 {
		t.Fatalf("read-only drops %d, want %d", got, before+1)
	}
}

// Refusing a store costs no allocation more than serving does: the
// counting hook on the ERROR path reads the refusal's text in place.
func TestRefusingDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector empties sync.Pools, so every call allocates under it")
	}
	net := memnet.New(memnet.Config{Clock: clock.NewVirtual(epoch)})
	n, err := New(Config{Transport: net.NewEndpoint(), Clock: clock.NewVirtual(epoch), Rand: rand.New(rand.NewPCG(1, 1)),
		StoreLimits: store.Limits{MaxPerKey: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	from := netip.MustParseAddrPort("127.1.2.3:5000")
	enc := func(m wire.Message) []byte {
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var w discard
	n.HandlePacket(enc(wire.Message{Type: wire.Put, TxID: 1, Sender: id.ID{1}, Target: id.Key("k"), Publisher: id.ID{1}, Version: 1, TTL: 60, Size: 1, Value: []byte("a")}), from, &w)
	badTTL := enc(wire.Message{Type: wire.Put, TxID: 2, Sender: id.ID{2}, Target: id.Key("k"), Publisher: id.ID{2}, Version: 1, Size: 1, Value: []byte("b")})
	n.HandlePacket(badTTL, from, &w)
	if a := testing.AllocsPerRun(200, func() { n.HandlePacket(badTTL, from, &w) }); a != 0 {
		t.Errorf("%v allocations per refusal", a)
	}
	// A bound's refusal allocates in the store (its LimitError and text);
	// reading the reason from that text adds nothing.
	keyFull := enc(wire.Message{Type: wire.Put, TxID: 3, Sender: id.ID{3}, Target: id.Key("k"), Publisher: id.ID{3}, Version: 1, TTL: 60, Size: 1, Value: []byte("c")})
	n.HandlePacket(keyFull, from, &w)
	v := store.Value{Publisher: id.ID{3}, Version: 1, Expires: epoch.Add(time.Hour), Data: []byte("c")}
	inStore := testing.AllocsPerRun(200, func() { _, _ = refusal(n.store.Put(id.Key("k"), v, from.Addr(), epoch)) })
	if a := testing.AllocsPerRun(200, func() { n.HandlePacket(keyFull, from, &w) }); a > inStore {
		t.Errorf("%v allocations per key-full refusal, %v of them in the store", a, inStore)
	}
	if st := n.Stats(); st.StoreRefusals["bad_ttl"] == 0 || st.StoreRefusals["key_full"] == 0 {
		t.Fatalf("refusals not counted: %v", st.StoreRefusals)
	}
}

// Counting a request's outcome allocates nothing, and a node that logs at
// info pays nothing for the debug lines.
func TestRequestOutcomesDoNotAllocateAtInfo(t *testing.T) {
	net := memnet.New(memnet.Config{Clock: clock.NewVirtual(epoch)})
	n, err := New(Config{Transport: net.NewEndpoint(), Clock: clock.NewVirtual(epoch), Rand: rand.New(rand.NewPCG(1, 1)),
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	p := pending{to: id.Contact{ID: id.ID{1}, Addr: netip.MustParseAddrPort("127.0.0.2:4000")}, typ: wire.FindNode, sent: epoch, tries: 1}
	answer := &wire.Message{Type: wire.Nodes}
	refusal := &wire.Message{Type: wire.Error, Code: wire.CodeBusy, Text: []byte("busy")}
	now := epoch.Add(30 * time.Millisecond)
	if a := testing.AllocsPerRun(100, func() {
		n.noteSent(&p)
		n.noteAnswer(&p, answer, now)
		n.noteAnswer(&p, refusal, now)
		n.noteTimeout(&p, now)
		n.noteAbandoned(p, true)
	}); a != 0 {
		t.Fatalf("%v allocations per outcome", a)
	}
	if got := n.Stats().Sent["FIND_NODE"]; got.Answered != 101 || got.Refused != 101 || got.Timeouts != 101 || got.Abandoned != 101 {
		t.Fatalf("Sent[FIND_NODE] = %+v", got)
	}
}

// Datagrams a transport.Group drops for want of a socket of the
// destination's family show in Stats.
func TestStatsShowTheTransportsDrops(t *testing.T) {
	clk := clock.NewVirtual(epoch)
	net := memnet.New(memnet.Config{Clock: clk})
	n, err := New(Config{Transport: transport.Multi(net.NewEndpoint()), Clock: clk, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.Ping(netip.MustParseAddrPort("[2001:db8::1]:4000"), func(id.Contact, error) {})
	if st := n.Stats(); st.NoRoute != 1 {
		t.Fatalf("NoRoute = %d, want 1", st.NoRoute)
	}
}
