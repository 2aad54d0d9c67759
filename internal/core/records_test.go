package core

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// The record kinds through the node: what storing nodes refuse, and what
// readers drop, whoever sends it. Signed records are made with package
// record; attacks are crafted as datagrams, as a modified node would send.

// keyOf is the ed25519 key whose seed is 32 bytes of b.
func keyOf(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// signed is one signed record, as its owner (or a forger) made it.
type signed struct {
	key, pub id.ID
	seq      uint64
	data     []byte
}

func mustSign(t *testing.T, priv ed25519.PrivateKey, salt string, seq uint64, value string) signed {
	t.Helper()
	key, pub, data, err := record.NewSigned(priv, []byte(salt), seq, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return signed{key, pub, seq, data}
}

// recordNet is a network of n nodes with K = 8, replication as asked.
func recordNet(t *testing.T, seed uint64, n int, mod func(*Config)) *testNet {
	tn := newTestNet(t, seed, memnet.Config{})
	for range n {
		tn.add(func(c *Config) {
			c.K = 8
			c.ReplicateInterval = -1
			if mod != nil {
				mod(c)
			}
		})
	}
	tn.bootstrapAll(20 * time.Millisecond)
	return tn
}

// rawPut hands node n one PUT datagram from addr, as a modified publisher
// or replica would send it, and returns the node's answer.
func rawPut(t *testing.T, n *Node, from netip.AddrPort, key, pub id.ID, version uint64, envelope bool, data []byte) wire.Message {
	t.Helper()
	m := wire.Message{Type: wire.Put, TxID: 7, Sender: id.Key("modified publisher"), Target: key, Publisher: pub,
		Version: version, TTL: 3600, Size: uint32(len(data)), Value: data}
	if envelope {
		m.PutFlags = wire.PutEnvelope
	}
	return rawRequest(t, n, from, m)
}

// rawRequest hands node n the request m from addr and returns the node's
// answer to it. A write refused for its token (code 14) is sent again once
// with the token the refusal carried, as a node does: the sender owns its
// address (see token_test.go for the ones that do not).
func rawRequest(t *testing.T, n *Node, from netip.AddrPort, m wire.Message) wire.Message {
	t.Helper()
	out := rawOnce(t, n, from, m)
	if out.Type == wire.Error && out.Code == wire.CodeToken && out.Flags&wire.FlagToken != 0 {
		m.Flags |= wire.FlagToken
		m.Token = out.Token
		out = rawOnce(t, n, from, m)
	}
	return out
}

// rawOnce hands node n the request m from addr once and returns its answer.
func rawOnce(t *testing.T, n *Node, from netip.AddrPort, m wire.Message) wire.Message {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var w recordWriter
	n.HandlePacket(b, from, &w)
	for _, p := range w.pkts {
		var out wire.Message
		if wire.Decode(p.Data, &out) == nil && out.TxID == m.TxID && !out.Type.IsRequest() {
			out.Text = bytes.Clone(out.Text)
			return out
		}
	}
	t.Fatalf("node %s did not answer the %s", n.ID().Short(), m.Type)
	return wire.Message{}
}

// rawDelete is rawPut's DELETE.
func rawDelete(t *testing.T, n *Node, from netip.AddrPort, key, pub id.ID, version uint64) wire.Message {
	t.Helper()
	m := wire.Message{Type: wire.Delete, TxID: 8, Sender: id.Key("modified publisher"), Target: key, Publisher: pub, Version: version, TTL: 3600}
	return rawRequest(t, n, from, m)
}

func wantError(t *testing.T, who string, m wire.Message, code wire.ErrorCode) {
	t.Helper()
	if m.Type != wire.Error || m.Code != code {
		t.Fatalf("%s answered %s code %d %q, want ERROR code %d", who, m.Type, m.Code, m.Text, code)
	}
}

// heldSeq returns the sequence of the enveloped record of pub that n holds
// under key, or 0 and false.
func heldSeq(n *Node, key, pub id.ID, now time.Time) (uint64, bool) {
	v, ok := n.Store().Lookup(key, pub, now)
	if !ok || !v.Envelope {
		return 0, false
	}
	return v.Version, true
}

var attacker = netip.MustParseAddrPort("127.66.0.1:4000")

// A signed record whose value, sequence, key or publisher was altered after
// signing, or that was signed by another key than the one it names, is
// refused by every node with code 11, whether a modified publisher sends it
// raw or an honest node's put carries it; the publisher's receipts say why.
func TestForgedSignedRecordIsRefusedByEveryNode(t *testing.T) {
	tn := recordNet(t, 301, 12, nil)
	owner, other := keyOf(1), keyOf(2)
	good := mustSign(t, owner, "", 5, "203.0.113.7:4000")

	altered := bytes.Clone(good.data)
	altered[len(altered)-1] ^= 1 // one bit of the value
	byOther := mustSign(t, other, "", 5, "203.0.113.7:4000")
	cases := []struct {
		name     string
		key, pub id.ID
		version  uint64
		data     []byte
	}{
		{"altered value", good.key, good.pub, good.seq, altered},
		{"altered sequence", good.key, good.pub, good.seq + 1, good.data},
		{"another key", id.Key("elsewhere"), good.pub, good.seq, good.data},
		{"another publisher", good.key, byOther.pub, good.seq, good.data},
		{"signed by another key", good.key, good.pub, good.seq, byOther.data},
		{"not an envelope", good.key, good.pub, good.seq, []byte{0xee, 1, 2, 3}},
	}
	for _, c := range cases {
		for i, n := range tn.nodes {
			wantError(t, c.name+" at node "+string(rune('A'+i)), rawPut(t, n, attacker, c.key, c.pub, c.version, true, c.data), wire.CodeInvalid)
		}
	}
	res, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: good.key, Publisher: good.pub, Version: good.seq, Value: altered, TTL: time.Hour, Envelope: true})
	if !errors.Is(err, ErrRejected) || res.Stored != 0 {
		t.Fatalf("put of an altered record: %v, stored on %d", err, res.Stored)
	}
	for _, rc := range res.Receipts {
		if rc.Outcome != Refused || rc.Code != wire.CodeInvalid || !strings.Contains(rc.Reason, "signature") {
			t.Fatalf("receipt %+v, want a refusal with code 11 naming the signature", rc)
		}
	}
	now := tn.clk.Now()
	for _, n := range tn.nodes {
		if n.Store().Len() != 0 {
			t.Fatalf("node %s stored %d records of forgeries", n.ID().Short(), n.Store().Len())
		}
	}
	if refused := tn.nodes[0].Stats().StoreRefusals["invalid"]; refused != uint64(len(cases)) {
		t.Fatalf("node 0 counts %d invalid refusals, want %d", refused, len(cases))
	}
	// The genuine record is stored, so the refusals were the forgeries'.
	if _, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: good.key, Publisher: good.pub, Version: good.seq, Value: good.data, TTL: time.Hour, Envelope: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := heldSeq(closestNodes(tn, good.key)[0], good.key, good.pub, now); !ok {
		t.Fatal("the genuine record is not stored at the closest node")
	}
}

// An older sequence never replaces a newer one: not when it is put after
// it, not when a modified publisher sends it raw, and not when a node that
// held it all along replicates it to the nodes that hold the newer one.
func TestOlderSequenceNeverReplacesNewer(t *testing.T) {
	tn := recordNet(t, 302, 16, func(c *Config) { c.ReplicateInterval = 2 * time.Minute })
	owner := keyOf(3)
	v1 := mustSign(t, owner, "salt", 1, "first")
	v2 := mustSign(t, owner, "salt", 2, "second")
	put := func(s signed) (*PutResult, error) {
		return putRec(t, tn, tn.nodes[0], PutRequest{Key: s.key, Publisher: s.pub, Version: s.seq, Value: s.data, TTL: time.Hour, Envelope: true})
	}
	if _, err := put(v2); err != nil {
		t.Fatal(err)
	}
	res, err := put(v1)
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("put of sequence 1 after 2: %v, want ErrRejected", err)
	}
	for _, rc := range res.Receipts {
		if rc.Outcome == Refused && rc.Code != wire.CodeStale {
			t.Fatalf("receipt %+v, want code 9", rc)
		}
	}
	closest := closestNodes(tn, v1.key)
	for _, n := range closest[:8] {
		wantError(t, "raw replica", rawPut(t, n, attacker, v1.key, v1.pub, v1.seq, true, v1.data), wire.CodeStale)
	}

	// A node outside the K closest kept sequence 1 (it was offline for
	// sequence 2); replication offers it to the K closest, which want it
	// (they lack that digest) and refuse it when it comes.
	stale := closest[len(closest)-1]
	now := tn.clk.Now()
	if err := stale.Store().Put(v1.key, store.Value{Publisher: v1.pub, Version: v1.seq, Envelope: true, Expires: now.Add(time.Hour), Data: v1.data}, netip.Addr{}, now); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(10 * time.Minute)
	st := stale.ReplicationStats()
	if st.Transfers == 0 || st.Refused == 0 || st.Accepted != 0 {
		t.Fatalf("the stale node's replication: %+v; want its sequence 1 sent and refused", st)
	}
	now = tn.clk.Now()
	for _, n := range closest[:8] {
		if seq, ok := heldSeq(n, v1.key, v1.pub, now); !ok || seq != 2 {
			t.Fatalf("node %s holds sequence %d (%v), want 2", n.ID().Short(), seq, ok)
		}
	}
	r, err := get(t, tn, tn.nodes[5], v1.key)
	if err != nil || len(r.Records) != 1 || r.Records[0].Version != 2 || !r.Records[0].Envelope {
		t.Fatalf("get: %v, %+v; want sequence 2", err, r)
	}
}

// Compare-and-swap: a put that expects another sequence than the one held
// is refused with CONFLICT (code 12) and changes nothing; one that expects
// the held sequence is stored, without its CAS field. (Each node judges by
// what it holds: the puts here run full lookups, so that they all store on
// the same K nodes.)
func TestCASWithAWrongSequenceConflicts(t *testing.T) {
	tn := recordNet(t, 303, 10, func(c *Config) { c.PutBeta = -1 })
	owner := keyOf(4)
	v5 := mustSign(t, owner, "", 5, "five")
	put := func(s signed, cas uint64) (*PutResult, error) {
		data, err := record.WithCAS(s.data, cas)
		if err != nil {
			t.Fatal(err)
		}
		return putRec(t, tn, tn.nodes[1], PutRequest{Key: s.key, Publisher: s.pub, Version: s.seq, Value: data, TTL: time.Hour, Envelope: true})
	}
	if _, err := put(v5, 0); err != nil {
		t.Fatalf("CAS 0 on an empty key: %v", err)
	}
	if r, err := put(mustSign(t, owner, "", 7, "seven"), 0); !errors.Is(err, ErrRejected) {
		t.Fatalf("CAS 0 over sequence 5: %v, want a rejection; %+v", err, r.Receipts)
	}
	res, err := put(mustSign(t, owner, "", 6, "six"), 4)
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("CAS 4 over sequence 5: %v, want a rejection", err)
	}
	for _, rc := range res.Receipts {
		if rc.Outcome != Refused || rc.Code != wire.CodeConflict {
			t.Fatalf("receipt %+v, want CONFLICT", rc)
		}
	}
	if _, err := put(mustSign(t, owner, "", 6, "six"), 5); err != nil {
		t.Fatalf("CAS 5 over sequence 5: %v", err)
	}
	now := tn.clk.Now()
	for _, n := range closestNodes(tn, v5.key)[:8] {
		v, ok := n.Store().Lookup(v5.key, v5.pub, now)
		if !ok || v.Version != 6 {
			t.Fatalf("node %s holds %+v, want sequence 6", n.ID().Short(), v)
		}
		if e, err := record.Parse(v.Data); err != nil || e.HasCAS {
			t.Fatalf("node %s stored the envelope with its CAS field (%v)", n.ID().Short(), err)
		}
	}
}

// A typed record that breaks its type's rules is refused by the storing
// nodes, even when a modified publisher sends the PUT datagram itself
// (the publisher's own checks are not what protects the network); the
// refusal names the field. A record that keeps them is stored, for no
// longer than its type's MaxTTL.
func TestTypedRecordBreakingItsRulesIsRefusedByStoringNodes(t *testing.T) {
	reg := record.Builtin()
	if err := reg.Register(record.Type{Name: "status", MaxTTL: 2 * time.Minute,
		Fields: []record.Field{{Name: "text", Format: record.Text, Required: true}}}); err != nil {
		t.Fatal(err)
	}
	tn := recordNet(t, 304, 8, func(c *Config) { c.RecordPolicy.Types = reg })
	owner := keyOf(5)
	for _, c := range []struct{ name, doc, field string }{
		{"nickname:alice", "not json", ""},
		{"nickname:alice", `["an array"]`, ""},
		{"nickname:alice", `{"type":"no-such-type"}`, "type"},
		{"nickname:alice", `{"type":"nickname","nickname":"alice"}`, "owner"},
		{"nickname:alice", `{"type":"nickname","nickname":"alice","owner":"ftp://x"}`, "owner"},
		{"nickname:bob", `{"type":"nickname","nickname":"alice","owner":"https://id.example.org/alice"}`, "name"},
	} {
		key, pub, data, err := record.NewTyped(owner, c.name, 1, []byte(c.doc))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range tn.nodes {
			m := rawPut(t, n, attacker, key, pub, 1, true, data)
			wantError(t, c.doc+" at node "+string(rune('A'+i)), m, wire.CodeInvalid)
			if !strings.Contains(string(m.Text), c.field) {
				t.Fatalf("%s: refusal %q does not name the field %q", c.doc, m.Text, c.field)
			}
		}
	}
	for _, n := range tn.nodes {
		if n.Store().Len() != 0 {
			t.Fatalf("node %s stored a typed record that breaks its rules", n.ID().Short())
		}
	}
	key, pub, data, err := record.NewTyped(owner, "nickname:alice", 1, []byte(`{"type":"nickname","nickname":"alice","owner":"https://id.example.org/alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := rawPut(t, tn.nodes[0], attacker, key, pub, 1, true, data); m.Type != wire.PutOK || m.TTL != 3600 {
		t.Fatalf("a nickname that keeps its rules: %s %q, want PUT_OK for 3600s", m.Type, m.Text)
	}
	key, pub, data, err = record.NewTyped(owner, "status:alice", 1, []byte(`{"type":"status","text":"away"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := rawPut(t, tn.nodes[0], attacker, key, pub, 1, true, data); m.Type != wire.PutOK || m.TTL != 120 {
		t.Fatalf("a status asking an hour: %s ttl %d %q, want PUT_OK for its type's 120s", m.Type, m.TTL, m.Text)
	}
}

// Only the owner withdraws a signed record: a withdrawal signed by another
// key, naming the owner's publisher, is refused (code 11); a plain DELETE or
// a plain PUT naming the owner's publisher, at any version, is refused as
// stale (code 9) and the signed record stays; the owner's own withdrawal is
// stored, and readers see the record withdrawn.
func TestOnlyTheOwnerOverridesOrWithdrawsASignedRecord(t *testing.T) {
	tn := recordNet(t, 305, 10, nil)
	owner, thief := keyOf(6), keyOf(7)
	rec := mustSign(t, owner, "", 3, "mine")
	if _, err := putRec(t, tn, tn.nodes[2], PutRequest{Key: rec.key, Publisher: rec.pub, Version: rec.seq, Value: rec.data, TTL: time.Hour, Envelope: true}); err != nil {
		t.Fatal(err)
	}
	forged := mustSign(t, thief, "", 9, "") // the thief's withdrawal...
	closest := closestNodes(tn, rec.key)[:8]
	for _, n := range closest {
		// ...aimed at the owner's record.
		wantError(t, "foreign withdrawal", rawPut(t, n, attacker, rec.key, rec.pub, 9, true, forged.data), wire.CodeInvalid)
		wantError(t, "plain DELETE", rawDelete(t, n, attacker, rec.key, rec.pub, 1<<62), wire.CodeStale)
		wantError(t, "plain PUT", rawPut(t, n, attacker, rec.key, rec.pub, 1<<62, false, []byte("yours now")), wire.CodeStale)
	}
	r, err := get(t, tn, tn.nodes[7], rec.key)
	if err != nil || len(r.Records) != 1 || r.Records[0].Version != 3 || r.Withdrawn != 0 {
		t.Fatalf("get after the attacks: %v, %+v; want sequence 3 and no withdrawal", err, r)
	}
	// The owner's withdrawal is stored, and read as one.
	w := mustSign(t, owner, "", 4, "")
	if _, err := putRec(t, tn, tn.nodes[2], PutRequest{Key: w.key, Publisher: w.pub, Version: w.seq, Value: w.data, TTL: time.Hour, Envelope: true}); err != nil {
		t.Fatal(err)
	}
	r, err = get(t, tn, tn.nodes[7], rec.key)
	if !errors.Is(err, ErrNotFound) || r.Withdrawn != 1 || len(r.Withdrawals) != 1 || r.Withdrawals[0].Version != 4 {
		t.Fatalf("get after the owner's withdrawal: %v, %+v; want it withdrawn at sequence 4", err, r)
	}
}

// A reader verifies every enveloped record it is served: a lying node that
// serves a forged record (a higher sequence the owner never signed, which
// would otherwise win the merge) is not believed, the genuine record is
// returned, and the forgery is counted.
func TestReaderDropsAForgedRecordServedByALyingNode(t *testing.T) {
	tn := newTestNet(t, 306, memnet.Config{})
	reader := tn.add(func(c *Config) { c.K = 8; c.ReplicateInterval = -1 })
	owner := keyOf(8)
	genuine := mustSign(t, owner, "", 2, "genuine")
	forged := mustSign(t, owner, "", 9, "forged")
	forged.data[len(forged.data)-1] ^= 1
	liarID := id.Key("liar")
	liar := tn.listenPeer(netip.MustParseAddrPort("127.66.0.2:4000"), liarID, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		if req.Type == wire.Get {
			return &wire.Message{Type: wire.Records, Records: []wire.Record{{
				Publisher: forged.pub, Version: forged.seq, TTL: 3600, Envelope: true, Size: uint32(len(forged.data)), Data: forged.data,
			}}}
		}
		return answer(req, from, nil)
	})
	pending := 1
	reader.Bootstrap([]netip.AddrPort{liar.ep.LocalAddr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)

	r, err := get(t, tn, reader, genuine.key)
	if !errors.Is(err, ErrNotFound) || len(r.Records) != 0 {
		t.Fatalf("get served only a forgery: %v, %+v; want not found", err, r)
	}
	if f := reader.Stats().ForgedRecords; f != 1 {
		t.Fatalf("ForgedRecords = %d, want 1", f)
	}
	now := tn.clk.Now()
	if err := reader.Store().Put(genuine.key, store.Value{Publisher: genuine.pub, Version: genuine.seq, Envelope: true, Expires: now.Add(time.Hour), Data: genuine.data}, netip.Addr{}, now); err != nil {
		t.Fatal(err)
	}
	r, err = get(t, tn, reader, genuine.key)
	if err != nil || len(r.Records) != 1 || r.Records[0].Version != 2 || !bytes.Equal(r.Records[0].Data, genuine.data) {
		t.Fatalf("get with the genuine record at hand: %v, %+v; want sequence 2", err, r)
	}
}

// A holder counts toward a get's quorum only when a record it returned
// stands: three forgers met early on a path, each answering with a forged
// signed record, must not end the get before an honest holder answers.
func TestForgedRecordsDoNotCountTowardTheQuorum(t *testing.T) {
	n := &Node{cfg: Config{MaxValueSize: 1 << 16}}
	owner := mustSign(t, keyOf(7), "quorum", 2, "the owner's")
	forged := owner
	forged.data = bytes.Clone(owner.data)
	forged.data[len(forged.data)-1] ^= 1 // the value changed under the signature
	rec := func(s signed) []wire.Record {
		return []wire.Record{{Publisher: s.pub, Version: s.seq, TTL: 60, Envelope: true, Size: uint32(len(s.data)), Data: s.data}}
	}
	from := id.Contact{Addr: netip.MustParseAddrPort("10.0.0.1:1")}
	o := &lookupOp{target: owner.key}
	for i := range 3 {
		o.mergeRecords(n, rec(forged), netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}), from)
	}
	if o.holders != 0 || len(o.recs) != 0 {
		t.Fatalf("after three forgers: %d holders counted, %d records merged; want none", o.holders, len(o.recs))
	}
	o.mergeRecords(n, rec(owner), netip.AddrFrom4([4]byte{10, 0, 0, 9}), from)
	if n.stats.forged != 3 {
		t.Errorf("%d forgeries counted, want 3", n.stats.forged)
	}
	if o.holders != 1 || len(o.recs) != 1 || o.recs[0].version != 2 {
		t.Fatalf("after the honest holder: %d holders, records %+v; want 1 holder of version 2", o.holders, o.recs)
	}
}
