package core

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// requireTokens is what testNet.add sets Config.RequireTokens to:
// CORE_REQUIRE_TOKENS=1 runs the tests of networks of real nodes with
// write tokens required (replication, hand-over, caching, republishing,
// listening), e.g.
//
//	CORE_REQUIRE_TOKENS=1 go test ./internal/core -run 'Replicat|Handover|Cache|Republish|Listen'
var requireTokens = os.Getenv("CORE_REQUIRE_TOKENS") == "1"

// tokenNode is one node that requires write tokens, in a network of its own.
func tokenNode(t *testing.T) (*testNet, *Node) {
	tn := newTestNet(t, 91, memnet.Config{})
	return tn, tn.add(func(c *Config) { c.RequireTokens = true })
}

// tokenNet is a joined network of size nodes that all require tokens.
func tokenNet(t *testing.T, seed uint64, size int) *testNet {
	tn := newTestNet(t, seed, memnet.Config{})
	for range size {
		tn.add(func(c *Config) { c.RequireTokens = true })
	}
	tn.bootstrapAll(10 * time.Millisecond)
	tn.clk.RunFor(time.Minute)
	return tn
}

// watch opens addr on the test network and hands f every datagram that
// arrives there, decoded (ok false when it does not decode).
func (tn *testNet) watch(addr netip.AddrPort, f func(m *wire.Message, ok bool)) {
	tn.t.Helper()
	ep, err := tn.net.Listen(addr)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { ep.Close() })
	if err := ep.Start(transport.HandlerFunc(func(b []byte, _ netip.AddrPort, _ transport.Writer) {
		var m wire.Message
		f(&m, wire.Decode(b, &m) == nil)
	})); err != nil {
		tn.t.Fatal(err)
	}
}

// askToken sends n a FIND_NODE with flag TOKEN from addr and returns the
// token its answer carries.
func askToken(t *testing.T, n *Node, from netip.AddrPort) wire.Token {
	t.Helper()
	out := rawOnce(t, n, from, wire.Message{Type: wire.FindNode, Flags: wire.FlagToken, TxID: 5, Sender: id.Key("writer"), Target: id.Key("anything")})
	if out.Type != wire.Nodes || out.Flags&wire.FlagToken == 0 {
		t.Fatalf("FIND_NODE asking for a token answered %s flags %d", out.Type, out.Flags)
	}
	return out.Token
}

var (
	addrA = netip.MustParseAddrPort("127.0.9.1:4000")
	addrB = netip.MustParseAddrPort("127.0.9.2:4000")
)

// tokenWrites are the four writes, each from the same claimed sender.
func tokenWrites(key id.ID) map[string]wire.Message {
	pub := id.Key("publisher")
	return map[string]wire.Message{
		"STORE":  {Type: wire.Store, TxID: 11, Sender: id.Key("writer"), Target: key, TTL: 3600, Value: []byte("v")},
		"PUT":    {Type: wire.Put, TxID: 12, Sender: id.Key("writer"), Target: key, Publisher: pub, Version: 5, TTL: 3600, Size: 1, Value: []byte("v")},
		"DELETE": {Type: wire.Delete, TxID: 13, Sender: id.Key("writer"), Target: key, Publisher: pub, Version: 9, TTL: 3600},
		"LISTEN": {Type: wire.Listen, TxID: 14, Sender: id.Key("writer"), Target: key, TTL: 600},
	}
}

// held counts what a write could have changed at n under key: records
// (tombstones included) and listeners.
func held(n *Node, key id.ID, now time.Time) (records, listeners int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.listeners {
		if l.key == key {
			listeners++
		}
	}
	return len(n.store.Records(key, now, nil)), listeners
}

// A write proves its sender owns its address only with a token handed to
// that address: without one, or with one handed to another address (what a
// datagram forging its source has at best), every write is refused with
// code 14, changes nothing, and the refusal hands the true source a token;
// with the token of its own address the same write is accepted.
func TestWriteWithoutItsAddressesTokenIsRefusedAndChangesNothing(t *testing.T) {
	for name, w := range tokenWrites(id.Key("token writes")) {
		t.Run(name, func(t *testing.T) {
			tn, n := tokenNode(t)
			key := w.Target
			tokA := askToken(t, n, addrA)
			tokB := askToken(t, n, addrB)
			if tokA == tokB {
				t.Fatal("two addresses got the same token")
			}
			check := func(label string, m wire.Message, from netip.AddrPort) {
				t.Helper()
				out := rawOnce(t, n, from, m)
				wantError(t, label, out, wire.CodeToken)
				if out.Flags&wire.FlagToken == 0 || out.Token != askToken(t, n, from) {
					t.Fatalf("%s: the refusal carries no fresh token for %v", label, from)
				}
				if r, l := held(n, key, tn.clk.Now()); r != 0 || l != 0 {
					t.Fatalf("%s: refused, yet the node holds %d records and %d listeners", label, r, l)
				}
			}
			check("no token", w, addrA)
			forged := w
			forged.Flags, forged.Token = wire.FlagToken, tokA
			check("A's token from B", forged, addrB)
			garbage := w
			garbage.Flags, garbage.Token = wire.FlagToken, wire.Token{1, 2, 3, 4, 5, 6, 7, 8}
			check("a made-up token", garbage, addrA)
			if st := n.Stats().Tokens; st.Refused != 3 {
				t.Fatalf("Stats.Tokens.Refused = %d, want 3", st.Refused)
			}

			good := w
			good.Flags, good.Token = wire.FlagToken, tokA
			out := rawOnce(t, n, addrA, good)
			if out.Type == wire.Error {
				t.Fatalf("the write with its address's token was refused: code %d %q", out.Code, out.Text)
			}
			if out.Flags&wire.FlagToken == 0 {
				t.Fatal("a write with TOKEN asks for a fresh token; the answer carries none")
			}
			r, l := held(n, key, tn.clk.Now())
			if w.Type == wire.Listen && l != 1 || w.Type != wire.Listen && r != 1 {
				t.Fatalf("accepted, yet the node holds %d records and %d listeners", r, l)
			}
		})
	}
}

// A token is good for at least one rotation after it was handed out and
// for at most two: past that the write is refused, and the refusal's
// fresh token makes the writer's one retry succeed.
func TestExpiredTokenIsRefusedAndTheRefusalsTokenWorks(t *testing.T) {
	tn, n := tokenNode(t)
	tok := askToken(t, n, addrA)
	w := tokenWrites(id.Key("expiry"))["PUT"]
	w.Flags, w.Token = wire.FlagToken, tok

	tn.clk.RunFor(wire.TokenRotation + time.Second)
	if out := rawOnce(t, n, addrA, w); out.Type != wire.PutOK {
		t.Fatalf("one rotation later the token was refused: %s code %d %q", out.Type, out.Code, out.Text)
	}
	tn.clk.RunFor(wire.TokenRotation)
	w.Version++
	out := rawOnce(t, n, addrA, w)
	wantError(t, "two rotations later", out, wire.CodeToken)
	if out.Flags&wire.FlagToken == 0 || out.Token == tok {
		t.Fatalf("the refusal carries no fresh token (flags %d, token %x)", out.Flags, out.Token)
	}
	w.Token = out.Token
	if out := rawOnce(t, n, addrA, w); out.Type != wire.PutOK {
		t.Fatalf("the retry with the refusal's token: %s code %d %q", out.Type, out.Code, out.Text)
	}
}

// A subscription is a write: a LISTEN without a valid token registers
// nothing, so no NOTIFY ever goes to its claimed source; one with a token
// proves its address at once, so the node sends no PING to check it.
func TestListenWithoutTokenGetsNoNotify(t *testing.T) {
	tn, n := tokenNode(t)
	key := id.Key("watched")
	notifies := map[netip.AddrPort]int{}
	for _, a := range []netip.AddrPort{addrA, addrB} {
		tn.watch(a, func(m *wire.Message, ok bool) {
			if ok && m.Type == wire.Notify {
				notifies[a]++
			}
		})
	}
	listen := tokenWrites(key)["LISTEN"]
	wantError(t, "LISTEN without a token", rawOnce(t, n, addrA, listen), wire.CodeToken)
	forged := listen
	forged.Flags, forged.Token = wire.FlagToken, askToken(t, n, addrB)
	wantError(t, "LISTEN with B's token from A", rawOnce(t, n, addrA, forged), wire.CodeToken)

	// B subscribes with its own token: registered and verified at once.
	good := forged
	var w recordWriter
	b, _ := good.Append(nil)
	n.HandlePacket(b, addrB, &w)
	pings := 0
	for _, p := range w.pkts {
		var m wire.Message
		if wire.Decode(p.Data, &m) == nil && m.Type == wire.Ping {
			pings++
		}
	}
	if pings != 0 {
		t.Fatalf("the node sent %d PINGs to check a listener whose token proved its address", pings)
	}

	pending := 1
	n.Put(key, []byte("changed"), time.Hour, func(*PutResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	tn.clk.RunFor(time.Second)
	if notifies[addrA] != 0 {
		t.Fatalf("%d NOTIFYs went to an address that never proved itself", notifies[addrA])
	}
	if notifies[addrB] != 1 {
		t.Fatalf("the listener with a token got %d NOTIFYs, want 1", notifies[addrB])
	}
}

// Nodes that all require tokens put, get, delete and listen as before: the
// writes carry the tokens the lookups' answers handed out, and a write
// that lacked one is sent again once with the refusal's.
func TestOperationsWorkWithTokensRequired(t *testing.T) {
	tn := tokenNet(t, 92, 40)
	key := id.Key("with tokens")
	pr, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: key, Value: []byte("v1"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Stored != tn.nodes[0].cfg.K || pr.Count(Refused) != 0 {
		t.Fatalf("put stored on %d, %d refused: %+v", pr.Stored, pr.Count(Refused), pr.Refusals())
	}
	if r, err := get(t, tn, tn.nodes[17], key); err != nil || len(r.Records) != 1 || string(r.Records[0].Data) != "v1" {
		t.Fatalf("get: %v %v", r, err)
	}
	// A large value, several parts to each node.
	big := make([]byte, 5000)
	if pr, err := putRec(t, tn, tn.nodes[5], PutRequest{Key: id.Key("big"), Value: big, TTL: time.Hour}); err != nil || pr.Count(Refused) != 0 {
		t.Fatalf("large put: %v, refusals %+v", err, pr)
	}
	pending := 1
	var dr *DeleteResult
	tn.nodes[3].Delete(DeleteRequest{Key: key, TTL: time.Hour}, func(r *DeleteResult, err error) {
		if err != nil {
			t.Errorf("delete: %v", err)
		}
		dr = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if dr == nil || dr.Found < tn.nodes[0].cfg.K-1 {
		t.Fatalf("delete withdrew the value at %+v", dr)
	}
	for _, x := range dr.Receipts {
		if x.Outcome == Refused {
			t.Fatalf("delete refused by %v: %s", x.Node, x.Reason)
		}
	}
	var refused, retries uint64
	for _, n := range tn.nodes {
		st := n.Stats().Tokens
		refused += st.Refused
		retries += st.Retries
	}
	t.Logf("tokens: %d writes refused for their token, %d sent again", refused, retries)
	if retries < refused {
		t.Fatalf("%d writes refused for their token but only %d sent again", refused, retries)
	}
}

// Minting and checking a token allocates nothing: every write served pays
// for it.
func TestTokensDoNotAllocate(t *testing.T) {
	_, n := tokenNode(t)
	now := epoch
	tok := n.tok.mint(addrA, tokenEpoch(now))
	if a := testing.AllocsPerRun(100, func() {
		if !n.tok.valid(tok, addrA, now) {
			t.Fatal("its own token is not valid")
		}
	}); a != 0 {
		t.Fatalf("checking a token allocates %.1f times", a)
	}
}

// The writer's table of tokens is bounded: once full, the oldest address
// goes, and a token is used only while it is fresh.
func TestTokenTableIsBounded(t *testing.T) {
	var tk tokens
	now := epoch
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
	}
	for i := range tokenCacheSize + 100 {
		tk.remember(addr(i), wire.Token{byte(i)}, now)
	}
	if len(tk.held) != tokenCacheSize || len(tk.order)-tk.head != tokenCacheSize {
		t.Fatalf("held %d tokens, order %d: want %d", len(tk.held), len(tk.order)-tk.head, tokenCacheSize)
	}
	if _, ok := tk.fresh(addr(0), now); ok {
		t.Fatal("the oldest token is still held")
	}
	last := addr(tokenCacheSize + 99)
	if _, ok := tk.fresh(last, now); !ok {
		t.Fatal("the newest token is not held")
	}
	if _, ok := tk.fresh(last, now.Add(tokenReuse)); ok {
		t.Fatal("a token is used past tokenReuse")
	}
}

// A writer whose tokens went stale (the storing nodes restarted, or the
// writer's table is wrong) is refused once per node and sends each write
// again with the refusal's token: the put still lands everywhere, at one
// extra request per node (per part in flight, for a larger value), and its
// caller never sees the refusals.
func TestStaleTokensCostOneRetryEach(t *testing.T) {
	tn := tokenNet(t, 93, 30)
	w := tn.nodes[4]
	w.run(func(now time.Time, _ transport.Writer) {
		for _, n := range tn.nodes {
			w.tok.remember(n.Addr(), wire.Token{0xba, 0xd}, now)
		}
	})
	before := w.Stats().Tokens.Retries
	pr, err := putRec(t, tn, w, PutRequest{Key: id.Key("stale"), Value: []byte("v"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Count(Refused) != 0 || pr.Stored != w.cfg.K {
		t.Fatalf("stored on %d, refused %+v", pr.Stored, pr.Refusals())
	}
	remote := uint64(pr.Stored)
	if pr.Local {
		remote--
	}
	if got := w.Stats().Tokens.Retries - before; got != remote {
		t.Fatalf("%d writes sent again, want one per remote node (%d)", got, remote)
	}
}

// TestPutPlacementWithTokens is TestPutPlacement where every node requires
// write tokens: a put to nodes it holds no token of ("cold": none written
// to or asked within tokenReuse) waits in its lookup for their answers,
// which bring the tokens, and so costs what the full lookup does at most;
// the same puts again ("warm": an update or republish within tokenReuse)
// cost what the beta rule costs without tokens. go test -run
// TestPutPlacementWithTokens -v prints the figures; -short runs the
// 200-node network only.
func TestPutPlacementWithTokens(t *testing.T) {
	sizes := []int{200, 1000}
	if testing.Short() || raceEnabled {
		sizes = sizes[:1] // see raceEnabled
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			tn := newTestNet(t, 1000+uint64(size), memnet.Config{})
			for range size {
				tn.add(func(c *Config) { c.RequireTokens = true })
			}
			tn.bootstrapAll(10 * time.Millisecond)
			tn.clk.RunFor(tokenReuse) // the joins' tokens run out: cold
			const puts = 100
			cold := measurePuts(t, tn, puts, DefaultPutBeta, 2)
			full := measurePuts(t, tn, puts, -1, 1)
			warm := measurePuts(t, tn, puts, DefaultPutBeta, 2) // the same nodes put the same keys again
			t.Logf("N=%d tokens, full lookup: %v", size, full)
			t.Logf("N=%d tokens, beta=%d cold: %v", size, DefaultPutBeta, cold)
			t.Logf("N=%d tokens, beta=%d warm: %v", size, DefaultPutBeta, warm)
			// A cold put asks every target the full lookup would (for
			// its token), and may end on a spare or two more: within one
			// request of the full lookup, where a token fetched by a
			// refused PUT and its retry would cost two per target.
			if cold.own > full.own+1 {
				t.Errorf("a cold put with tokens sends %.1f FIND_NODEs and PUTs, the full lookup %.1f", cold.own, full.own)
			}
			if warm.own >= cold.own {
				t.Errorf("a warm put with tokens sends %.1f FIND_NODEs and PUTs, a cold one %.1f", warm.own, cold.own)
			}
			for name, p := range map[string]placement{"cold": cold, "warm": warm} {
				if p.onTrue < 0.97 || p.stored < float64(tn.nodes[0].cfg.K)-0.5 {
					t.Errorf("beta rule with tokens, %s: %v", name, p)
				}
			}
		})
	}
}

// A token is 8 more bytes in an answer, and a refusal for the token is an
// answer too: whatever a request with flag TOKEN, or a write refused for
// its token, makes the node send to the request's claimed source stays
// within the amplification limit (as TestRequestsDrawNoMoreThanTheirLimitInAll
// checks without tokens).
func TestTokenAnswersKeepToTheAmplificationLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		req  wire.Message
	}{
		{"PING asking", wire.Message{Type: wire.Ping, Flags: wire.FlagToken}},
		{"FIND_NODE asking", wire.Message{Type: wire.FindNode, Flags: wire.FlagToken}},
		{"LISTEN without token", wire.Message{Type: wire.Listen, TTL: 60}},
		{"LISTEN with a wrong token", wire.Message{Type: wire.Listen, TTL: 60, Flags: wire.FlagToken, Token: wire.Token{9}}},
		{"STORE without token", wire.Message{Type: wire.Store, TTL: 60, Value: []byte("v")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tn := newTestNet(t, 305, memnet.Config{})
			srv := tn.add(func(c *Config) { c.RequireTokens = true })
			victim := tn.listenPeer(netip.MustParseAddrPort("127.201.0.1:4000"), id.Key("victim"), nil)
			sendRaw(t, victim, srv.Addr(), wire.Message{Type: wire.Ping, TxID: 1})
			tn.clk.RunFor(time.Hour)
			srv.run(func(now time.Time, _ transport.Writer) {
				// Contacts for FIND_NODE to hand out, up to its budget.
				for i := range 20 {
					srv.table.Verified(id.Contact{ID: id.Key(fmt.Sprint(i)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 202, 0, byte(i + 1)}), 4000)}, now)
				}
			})
			victim.sizes = victim.sizes[:0]
			req := c.req
			req.Sender, req.TxID, req.Target = id.Key("someone else"), 9, id.Key("k")
			b, err := req.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
			tn.clk.RunFor(10 * time.Second)
			total := 0
			for _, n := range victim.sizes {
				total += n
			}
			if total > wire.AmplificationFactor*len(b) {
				t.Errorf("a %d-byte %s drew %d bytes in %d datagrams, over %dx", len(b), c.name, total, len(victim.sizes), wire.AmplificationFactor)
			}
			if len(victim.sizes) == 0 {
				t.Errorf("no answer at all")
			}
		})
	}
}

// BenchmarkTokenCheck is what a write costs a node that requires tokens
// when the token is of the previous period (two HMACs, the worst case).
func BenchmarkTokenCheck(b *testing.B) {
	var tk tokens
	now := epoch.Add(wire.TokenRotation)
	tok := tk.mint(addrA, tokenEpoch(epoch))
	b.ReportAllocs()
	for b.Loop() {
		if !tk.valid(tok, addrA, now) {
			b.Fatal("invalid")
		}
	}
}

// Replication (by digest, then PUT and DELETE), hand-over to newcomers,
// re-replication after departures, path caching and republishing work
// when every node requires write tokens: their scenario tests, run with
// RequireTokens on (CORE_REQUIRE_TOKENS=1 runs many more, see .ci/run).
// The OFFERs ask for tokens and their WANTs bring them; the gets' GETs
// bring the path cache's.
func TestReplicationCacheAndRepublishWithTokensRequired(t *testing.T) {
	old := requireTokens
	requireTokens = true
	t.Cleanup(func() { requireTokens = old })
	for name, f := range map[string]func(*testing.T){
		"replication":    TestReplicationRestoresReplicasAfterTheClosestNodesLeave,
		"hand-over":      TestHandoverGivesANewcomerTheKeysItIsNowClosestTo,
		"no roll-back":   TestReplicationNeverRollsBackAndSettlesOnDigests,
		"departures":     TestDeparturesAreReReplicatedWithinMinutes,
		"path cache":     TestPathCacheStoresAtTheClosestNodeWithoutItWithAShrinkingTTL,
		"republish":      TestRepublishKeepsAValueAlivePastItsTTLUntilStopped,
		"holders leave":  TestRepublishRestoresAValueAfterItsHoldersLeft,
		"get everywhere": TestPutStoresOnTheKClosestAndGetFindsIt,
		"listener":       TestListenerSeesChangesAndFollowsTheClosestNodes,
	} {
		t.Run(name, f)
	}
}
