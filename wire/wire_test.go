package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func mustID(s string) id.ID {
	x, err := id.Parse(s)
	if err != nil {
		panic(err)
	}
	return x
}

var (
	sender = mustID("0102030405060708090a0b0c0d0e0f1011121314")
	target = mustID("f0e0d0c0b0a090807060504030201000ffeeddcc")
	c4     = id.Contact{ID: mustID("1111111111111111111111111111111111111111"), Addr: netip.MustParseAddrPort("127.0.0.1:4000")}
	c6     = id.Contact{ID: mustID("2222222222222222222222222222222222222222"), Addr: netip.MustParseAddrPort("[::1]:4001")}
	pub    = mustID("3333333333333333333333333333333333333333")
	pub2   = mustID("4444444444444444444444444444444444444444")
)

// The examples' versions are what the library assigns by default: the Unix
// time in microseconds at Put, here 2026-01-01T00:00:00Z and an hour later.
const (
	ver  = 1767225600000000
	ver2 = 1767229200000000
)

func hdr(t Type) Message {
	return Message{Type: t, Network: 0x0a0b0c0d, TxID: 0x1122334455667788, Sender: sender}
}

// goldenMessages are the examples docs/protocol.md walks through; their bytes
// are pinned in testdata/golden so that any change to the encoding shows up.
func goldenMessages() map[string]*Message {
	ms := map[string]*Message{}
	add := func(name string, f func(m *Message)) {
		m := hdr(0)
		f(&m)
		ms[name] = &m
	}
	add("ping", func(m *Message) { m.Type = Ping })
	add("ping_readonly", func(m *Message) { m.Type = Ping; m.Flags = FlagReadOnly })
	add("pong", func(m *Message) { m.Type = Pong; m.Observed = netip.MustParseAddrPort("203.0.113.7:4000") })
	add("find_node", func(m *Message) { m.Type = FindNode; m.Target = target })
	add("nodes", func(m *Message) { m.Type = Nodes; m.Contacts = []id.Contact{c4, c6} })
	add("find_value", func(m *Message) { m.Type = FindValue; m.Target = target })
	add("values", func(m *Message) {
		m.Type = Values
		m.Values = []Value{{TTL: 3600, Data: []byte("203.0.113.7:4000")}, {TTL: 60, Data: []byte{}}}
		m.More = true
		m.Contacts = []id.Contact{c4}
	})
	add("store", func(m *Message) { m.Type = Store; m.Target = target; m.TTL = 86400; m.Value = []byte("hello") })
	add("stored", func(m *Message) { m.Type = Stored; m.TTL = 3600 })
	// The ERROR texts are the ones a node sends: a store whose values may
	// be at most 500 bytes refusing 800, a source over its quota under one
	// key, and a request type the node does not know.
	add("error", func(m *Message) {
		m.Type = Error
		m.Code = CodeTooLarge
		m.Text = []byte("store: value too large: 800 bytes, limit 500")
	})
	add("error_full", func(m *Message) {
		m.Type = Error
		m.Code = CodeFull
		m.Text = []byte("store: source quota: 4 values from 203.0.113.7 under this key, limit 4 per key")
	})
	add("error_unknown_type", func(m *Message) {
		m.Type = Error
		m.Code = CodeUnknownType
		m.Text = []byte("unknown request type")
	})
	add("error_stale", func(m *Message) {
		m.Type = Error
		m.Code = CodeStale
		m.Text = []byte("store: not newer than the held version")
	})

	// The storage messages. A value of up to MaxPart bytes is one PUT; a
	// 2405-byte value is three, at offsets 0, 1200 and 2400, the last
	// carrying 5 bytes.
	add("put", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Put, target, pub, ver, 3600
		m.Size, m.Offset, m.Value = 5, 0, []byte("hello")
	})
	add("put_part", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Put, target, pub, ver, 3600
		m.Size, m.Offset, m.Value = 2405, 2400, []byte("world")
	})
	// An enveloped value: the IMMUTABLE envelope of "hello" (kind byte 1,
	// then the value), under its content key SHA-1("hello"), published by
	// that key at version 0, with the PUT flags byte's ENVELOPE bit.
	add("put_envelope", func(m *Message) {
		data := append([]byte{1}, "hello"...)
		k := id.ID(sha1.Sum([]byte("hello")))
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Put, k, k, 0, 3600
		m.Size, m.Offset, m.Value, m.PutFlags = uint32(len(data)), 0, data, PutEnvelope
	})
	add("put_ok", func(m *Message) { m.Type, m.Status, m.TTL = PutOK, StatusStored, 3600 })
	add("put_ok_part", func(m *Message) { m.Type, m.Status = PutOK, StatusPart })
	add("get", func(m *Message) { m.Type, m.Target = Get, target })
	add("get_cursor", func(m *Message) {
		m.Type, m.Target, m.Cursor, m.AfterVersion, m.AfterPublisher = Get, target, true, ver, pub
	})
	// Newest first: pub2's tombstone (the later version) before pub's value.
	add("records", func(m *Message) {
		m.Type = Records
		m.Records = []Record{
			{Publisher: pub2, Version: ver2, TTL: 86400, Deleted: true},
			{Publisher: pub, Version: ver, TTL: 3600, Size: 5, Data: []byte("hello")},
		}
		m.More = true
	})
	// A SIGNED record (see signedExample) with the record flag ENVELOPE.
	add("records_envelope", func(m *Message) {
		_, publisher, data := signedExample()
		m.Type = Records
		m.Records = []Record{{Publisher: publisher, Version: 1, TTL: 3600, Envelope: true, Size: uint32(len(data)), Data: data}}
	})
	add("records_fetch", func(m *Message) {
		m.Type = Records
		m.Records = []Record{{Publisher: pub, Version: ver, TTL: 3600, Size: 2405, Data: []byte{}}}
	})
	add("records_contacts", func(m *Message) { m.Type, m.Contacts = Records, []id.Contact{c4} })
	add("fetch", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.Offset = Fetch, target, pub, ver, 2400
	})
	add("part", func(m *Message) { m.Type, m.Size, m.Offset, m.Value = Part, 2405, 2400, []byte("world") })
	add("delete", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Delete, target, pub, ver2, 3600
	})
	add("deleted", func(m *Message) { m.Type, m.Found, m.TTL = Deleted, true, 3600 })
	add("listen", func(m *Message) { m.Type, m.Target, m.TTL = Listen, target, 600 })
	add("listening", func(m *Message) { m.Type, m.TTL = Listening, 600 })
	add("notify", func(m *Message) {
		m.Type, m.Target = Notify, target
		m.Record = Record{Publisher: pub, Version: ver, TTL: 3600, Size: 5, Data: []byte("hello")}
	})
	add("notified", func(m *Message) { m.Type = Notified })
	// Replication: two records offered under target (pub's value at ver
	// and pub2's tombstone at ver2), of which the receiver lacks the second.
	add("offer", func(m *Message) {
		m.Type = Offer
		m.Offers = []Digest{
			{Key: target, Hash: RecordDigest(target, pub, ver, false)},
			{Key: target, Hash: RecordDigest(target, pub2, ver2, true)},
		}
	})
	add("want", func(m *Message) { m.Type, m.Wants = Want, []uint8{1} })
	identGolden(ms)     // ident_test.go
	addTokenGolden(add) // token_test.go
	return ms
}

// signedExample is the SIGNED envelope of docs/protocol.md's example:
// the ed25519 key whose seed is 32 bytes of 0x01 signs sequence 1 of the
// value "hello" without salt. The signature is over BEP 44's buffer
// "3:seqi1e1:v5:hello", written out here rather than by package record, so
// that the golden bytes are checked against the spec's text.
func signedExample() (key, publisher id.ID, data []byte) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	pubKey := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, []byte("3:seqi1e1:v5:hello"))
	data = append([]byte{2, 0}, pubKey...)
	data = append(data, sig...)
	data = append(data, 0) // no salt
	data = append(data, "hello"...)
	return sha1.Sum(pubKey), sha1.Sum(pubKey), data
}

// paddedGolden are the requests as a node sends them: FIND_NODE and
// FIND_VALUE padded with zero bytes to the lengths that earn a full answer
// from a node that has not verified the requester's address.
func paddedGolden() map[string]struct {
	m *Message
	n int
} {
	g := goldenMessages()
	return map[string]struct {
		m *Message
		n int
	}{
		"find_node_padded":  {g["find_node"], MinFindNodeLen},
		"find_value_padded": {g["find_value"], MinFindValueLen},
		"ping_prove_padded": identPadded(), // ident_test.go
	}
}

// checkGolden compares got with testdata/golden/name.hex (rewriting it with
// -update) and checks that the golden bytes decode to m.
func checkGolden(t *testing.T, name string, got []byte, m *Message) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".hex")
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := readGolden(name)
	if err != nil {
		t.Fatalf("%v (run go test ./wire -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed:\n got %x\nwant %x", got, want)
	}
	var back Message
	if err := Decode(want, &back); err != nil {
		t.Fatal(err)
	}
	if !equal(m, &back) {
		t.Fatalf("golden bytes decode to\n%s\nwant\n%s", describe(&back), describe(m))
	}
}

func readGolden(name string) ([]byte, error) {
	text, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(strings.TrimSpace(string(text)))
}

// equal compares the meaningful fields of two messages (nil and empty slices
// alike; internal arrays ignored).
func equal(a, b *Message) bool {
	if a.Type != b.Type || a.Flags != b.Flags || a.Network != b.Network || a.TxID != b.TxID || a.Sender != b.Sender {
		return false
	}
	if a.Target != b.Target || a.TTL != b.TTL || !bytes.Equal(a.Value, b.Value) || a.More != b.More {
		return false
	}
	if a.Observed != b.Observed || a.Code != b.Code || !bytes.Equal(a.Text, b.Text) {
		return false
	}
	if a.Publisher != b.Publisher || a.Version != b.Version || a.Size != b.Size || a.Offset != b.Offset || a.PutFlags != b.PutFlags {
		return false
	}
	if a.Status != b.Status || a.Found != b.Found || !equalRecord(&a.Record, &b.Record) {
		return false
	}
	if a.Cursor != b.Cursor || a.AfterVersion != b.AfterVersion || a.AfterPublisher != b.AfterPublisher {
		return false
	}
	if a.Token != b.Token {
		return false
	}
	if len(a.Contacts) != len(b.Contacts) || len(a.Values) != len(b.Values) || len(a.Records) != len(b.Records) {
		return false
	}
	if !slices.Equal(a.Offers, b.Offers) || !bytes.Equal(a.Wants, b.Wants) || !bytes.Equal(a.Proof, b.Proof) {
		return false
	}
	for i := range a.Records {
		if !equalRecord(&a.Records[i], &b.Records[i]) {
			return false
		}
	}
	for i := range a.Contacts {
		if a.Contacts[i] != b.Contacts[i] {
			return false
		}
	}
	for i := range a.Values {
		if a.Values[i].TTL != b.Values[i].TTL || !bytes.Equal(a.Values[i].Data, b.Values[i].Data) {
			return false
		}
	}
	return true
}

func equalRecord(a, b *Record) bool {
	return a.Publisher == b.Publisher && a.Version == b.Version && a.TTL == b.TTL && a.Deleted == b.Deleted &&
		a.Envelope == b.Envelope && a.Size == b.Size && bytes.Equal(a.Data, b.Data)
}

func describe(m *Message) string {
	return fmt.Sprintf("%s flags=%d net=%x tx=%x sender=%s target=%s ttl=%d value=%q values=%v more=%v contacts=%v observed=%v code=%d text=%q"+
		" publisher=%s putflags=%d version=%d size=%d offset=%d status=%d found=%v records=%+v record=%+v cursor=%v after=%d/%s offers=%x wants=%v token=%x",
		m.Type, m.Flags, m.Network, m.TxID, m.Sender.Short(), m.Target.Short(), m.TTL, m.Value, m.Values, m.More, m.Contacts, m.Observed, m.Code, m.Text,
		m.Publisher.Short(), m.PutFlags, m.Version, m.Size, m.Offset, m.Status, m.Found, m.Records, m.Record, m.Cursor, m.AfterVersion, m.AfterPublisher.Short(), m.Offers, m.Wants, m.Token)
}

func TestGoldenBytes(t *testing.T) {
	for name, m := range goldenMessages() {
		t.Run(name, func(t *testing.T) {
			got, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name, got, m)
		})
	}
	for name, p := range paddedGolden() {
		t.Run(name, func(t *testing.T) {
			got, err := p.m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			got = Pad(got, 0, p.n)
			if len(got) != p.n {
				t.Fatalf("padded to %d bytes, want %d", len(got), p.n)
			}
			checkGolden(t, name, got, p.m) // the padding decodes away
		})
	}
}

// Every golden file is an example some test produces: a file left behind by
// a removed example would otherwise look checked while nothing checks it.
func TestEveryGoldenFileIsChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, padded := goldenMessages(), paddedGolden()
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hex")
		if _, ok := msgs[name]; !ok {
			if _, ok := padded[name]; !ok {
				t.Errorf("%s has no example in goldenMessages or paddedGolden", f)
			}
		}
	}
	if len(files) != len(msgs)+len(padded) {
		t.Errorf("%d golden files, %d examples", len(files), len(msgs)+len(padded))
	}
}

// The examples of docs/protocol.md are the golden files, byte for byte: each
// fenced block whose lead-in line names `NAME.hex` holds that file's bytes in
// hex (spaces and line breaks aside), and every golden file is shown. A
// stranger implementing the spec from its text gets the bytes the tests pin.
func TestSpecExamplesAreTheGoldenFiles(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`([a-z0-9_]+)\\.hex`")
	shown := map[string]bool{}
	lines := strings.Split(string(doc), "\n")
	lead := ""
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "```") {
			if line != "" {
				lead = line
			}
			continue
		}
		var block strings.Builder
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
			block.WriteString(lines[i])
		}
		intro := lead
		lead = ""
		ms := named.FindAllStringSubmatch(intro, -1)
		if len(ms) == 0 {
			continue // not an example
		}
		if len(ms) > 1 {
			t.Errorf("lead-in %q names %d golden files, want one", intro, len(ms))
			continue
		}
		name := ms[0][1]
		shown[name] = true
		if _, err := os.Stat(filepath.Join("..", "record", "testdata", "golden", name+".hex")); err == nil {
			continue // an envelope of "Record kinds": package record pins it
		}
		got, err := hex.DecodeString(strings.Join(strings.Fields(block.String()), ""))
		if err != nil {
			t.Errorf("%s: the example is not hex: %v", name, err)
			continue
		}
		want, err := readGolden(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the spec shows\n%x\nthe golden file holds\n%x", name, got, want)
		}
	}
	for name := range goldenMessages() {
		if !shown[name] {
			t.Errorf("docs/protocol.md shows no example of %s.hex", name)
		}
	}
	for name := range paddedGolden() {
		if !shown[name] {
			t.Errorf("docs/protocol.md shows no example of %s.hex", name)
		}
	}
}

// The spec's padding lengths are what the amplification rule needs: a padded
// FIND_NODE earns the largest NODES of K = 20 IPv6 contacts, a padded
// FIND_VALUE earns any datagram a node sends, and MinFindValueLen is the
// least length that does.
func TestPaddingEarnsAFullAnswer(t *testing.T) {
	m := hdr(Nodes)
	for range 20 {
		m.Contacts = append(m.Contacts, c6)
	}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 37+20*39 || len(b) > AmplificationFactor*MinFindNodeLen {
		t.Errorf("a NODES of 20 IPv6 contacts is %d bytes; a padded FIND_NODE earns %d", len(b), AmplificationFactor*MinFindNodeLen)
	}
	if AmplificationFactor*MinFindValueLen < MaxPacket || AmplificationFactor*(MinFindValueLen-1) >= MaxPacket {
		t.Errorf("MinFindValueLen = %d is not the least length whose %dx covers %d bytes", MinFindValueLen, AmplificationFactor, MaxPacket)
	}
}

// A node reads datagrams up to the transport's 2048 bytes and decodes them
// by the same rules as any other, though it never sends one over MaxPacket:
// a 2048-byte VALUES decodes, and the encoder refuses to produce it.
func TestDecodeAcceptsDatagramsUpToTheTransportLimit(t *testing.T) {
	m := hdr(Values)
	m.Values = []Value{{TTL: 1, Data: bytes.Repeat([]byte{'a'}, 1000)}, {TTL: 2, Data: bytes.Repeat([]byte{'b'}, 997)}}
	b := []byte{Magic, Version, byte(Values), 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	b = append(b, sender[:]...)
	b = append(b, 0, 2)
	for _, v := range m.Values {
		b = binary.BigEndian.AppendUint32(b, v.TTL)
		b = binary.BigEndian.AppendUint16(b, uint16(len(v.Data)))
		b = append(b, v.Data...)
	}
	b = append(b, 0) // no contacts
	if len(b) != transport.MaxDatagram {
		t.Fatalf("built %d bytes, want %d", len(b), transport.MaxDatagram)
	}
	var back Message
	if err := Decode(b, &back); err != nil || !equal(&m, &back) {
		t.Fatalf("Decode of a %d-byte VALUES: %v, %s", len(b), err, describe(&back))
	}
	if _, err := m.Append(nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a %d-byte VALUES: %v, want ErrTooLarge", len(b), err)
	}
}

// A string key is the SHA-1 of its UTF-8 bytes, as the spec's examples say.
func TestStringKeyIsSHA1OfItsUTF8Bytes(t *testing.T) {
	for s, want := range map[string]string{
		"":      "da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"hello": "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
		"café":  "f424452a9673918c6f09b0cdd35b20be8e6ae7d7",
	} {
		if got := id.Key(s).String(); got != want {
			t.Errorf("Key(%q) = %s, want %s", s, got, want)
		}
	}
}

// The header layout is the part every version shares; pin it field by field.
func TestHeaderLayout(t *testing.T) {
	m := hdr(FindNode)
	m.Flags = FlagReadOnly
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "d7" + "01" + "02" + "01" + "0a0b0c0d" + "1122334455667788" + sender.String()
	if got := hex.EncodeToString(b[:HeaderLen]); got != want {
		t.Fatalf("header = %s, want %s", got, want)
	}
}

func randomMessage(r *rand.Rand) *Message {
	types := []Type{Ping, FindNode, FindValue, Store, Error, Pong, Nodes, Values, Stored,
		Put, Get, Fetch, Delete, Listen, Notify, PutOK, Records, Part, Deleted, Listening, Notified, Offer, Want}
	m := hdr(types[r.IntN(len(types))])
	m.Flags = Flags(r.IntN(2))
	if r.IntN(2) == 0 {
		m.Flags |= FlagToken // token.go: a trailer on writes and responses, a request elsewhere
		if CarriesToken(m.Type) {
			binary.BigEndian.PutUint64(m.Token[:], r.Uint64())
		}
	}
	m.Network = r.Uint32()
	m.TxID = r.Uint64()
	m.Sender = id.Random(r)
	randContacts := func(n int) []id.Contact {
		cs := make([]id.Contact, n)
		for i := range cs {
			cs[i].ID = id.Random(r)
			if r.IntN(2) == 0 {
				cs[i].Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), 1, 2, 3}), uint16(r.Uint32()))
			} else {
				var a [16]byte
				a[0] = 0x20
				a[15] = byte(r.Uint32())
				cs[i].Addr = netip.AddrPortFrom(netip.AddrFrom16(a), uint16(r.Uint32()))
			}
		}
		return cs
	}
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	switch m.Type {
	case Pong:
		m.Observed = randContacts(1)[0].Addr
	case FindNode, FindValue:
		m.Target = id.Random(r)
	case Stored:
		m.TTL = r.Uint32()
	case Store:
		m.Target = id.Random(r)
		m.TTL = r.Uint32()
		m.Value = randBytes(r.IntN(MaxValueSize + 1))
	case Nodes:
		m.Contacts = randContacts(r.IntN(MaxContacts + 1))
	case Values:
		for range r.IntN(5) {
			m.Values = append(m.Values, Value{TTL: r.Uint32(), Data: randBytes(r.IntN(200))})
		}
		m.More = r.IntN(2) == 0
		m.Contacts = randContacts(r.IntN(8))
	case Error:
		m.Code = ErrorCode(r.Uint32())
		m.Text = randBytes(r.IntN(MaxErrorText + 1))
	case Put:
		m.Target, m.Publisher, m.Version, m.TTL = id.Random(r), id.Random(r), r.Uint64(), r.Uint32()
		m.Size = randSize(r)
		// A canonical part: one of the value's consecutive MaxPart slices.
		parts := (int(m.Size) + MaxPart - 1) / MaxPart // 0 for an empty value, sent as one empty part
		m.Offset = uint32(r.IntN(max(parts, 1)) * MaxPart)
		m.Value = randBytes(int(min(MaxPart, m.Size-m.Offset)))
		if m.Size > 0 && r.IntN(2) == 0 {
			m.PutFlags = PutEnvelope
		}
	case PutOK:
		m.Status, m.TTL = uint8(r.IntN(2)), r.Uint32()
	case Get:
		m.Target = id.Random(r)
		if r.IntN(2) == 0 {
			m.Cursor, m.AfterVersion, m.AfterPublisher = true, r.Uint64(), id.Random(r)
		}
	case Records:
		for range r.IntN(6) {
			m.Records = append(m.Records, randRecord(r, randBytes))
		}
		m.More = r.IntN(2) == 0
		m.Contacts = randContacts(r.IntN(4))
	case Fetch:
		m.Target, m.Publisher, m.Version, m.Offset = id.Random(r), id.Random(r), r.Uint64(), r.Uint32()
	case Part:
		m.Size = randSize(r)
		m.Offset = uint32(r.IntN(int(m.Size) + 1))
		m.Value = randBytes(r.IntN(int(min(MaxPart, m.Size-m.Offset)) + 1))
	case Delete:
		m.Target, m.Publisher, m.Version, m.TTL = id.Random(r), id.Random(r), r.Uint64(), r.Uint32()
	case Deleted:
		m.Found, m.TTL = r.IntN(2) == 0, r.Uint32()
	case Listen:
		m.Target, m.TTL = id.Random(r), r.Uint32()
	case Listening:
		m.TTL = r.Uint32()
	case Notify:
		m.Target = id.Random(r)
		m.Record = randRecord(r, randBytes)
	case Offer:
		for range r.IntN(MaxOffer + 1) {
			m.Offers = append(m.Offers, Digest{Key: id.Random(r), Hash: r.Uint64()})
		}
	case Want:
		for i := range MaxOffer {
			if r.IntN(3) == 0 {
				m.Wants = append(m.Wants, uint8(i))
			}
		}
	}
	return &m
}

// randSize draws a value size, often small, sometimes near MaxPart or up
// to MaxRecordSize, where the length rules have their edges.
func randSize(r *rand.Rand) uint32 {
	switch r.IntN(4) {
	case 0:
		return uint32(r.IntN(16))
	case 1:
		return uint32(MaxPart - 2 + r.IntN(5))
	case 2:
		return uint32(MaxRecordSize - r.IntN(3))
	}
	return uint32(r.IntN(MaxRecordSize + 1))
}

// randRecord draws an inline value, a fetch-only value or a tombstone.
func randRecord(r *rand.Rand, randBytes func(int) []byte) Record {
	rec := Record{Publisher: id.Random(r), Version: r.Uint64(), TTL: r.Uint32()}
	switch r.IntN(3) {
	case 0:
		rec.Data = randBytes(r.IntN(200))
		rec.Size = uint32(len(rec.Data))
	case 1:
		rec.Size = max(1, randSize(r))
	default:
		rec.Deleted = true
	}
	rec.Envelope = !rec.Deleted && rec.Size > 0 && r.IntN(2) == 0
	return rec
}

func TestRoundTripRandomMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var back Message
	for i := range 20000 {
		m := randomMessage(r)
		b, err := m.Append(nil)
		if errors.Is(err, ErrTooLarge) {
			continue // e.g. 32 IPv6 contacts exceed MaxPacket; TestEncodeCaps covers it
		}
		if err != nil {
			t.Fatalf("#%d %s: %v", i, m.Type, err)
		}
		if err := Decode(b, &back); err != nil {
			t.Fatalf("#%d %s: decode: %v", i, m.Type, err)
		}
		if !equal(m, &back) {
			t.Fatalf("#%d round trip changed the message:\n got %s\nwant %s", i, describe(&back), describe(m))
		}
	}
}

func TestTrailingBytesAreIgnored(t *testing.T) {
	m := goldenMessages()["nodes"]
	b, _ := m.Append(nil)
	b = append(b, "future fields"...)
	var back Message
	if err := Decode(b, &back); err != nil || !equal(m, &back) {
		t.Fatalf("decode with trailing bytes: %v, %s", err, describe(&back))
	}
}

func TestEncodeCaps(t *testing.T) {
	big := make([]byte, MaxValueSize+1)
	huge := make([]byte, MaxPart+1)
	many := make([]id.Contact, MaxContacts+1)
	for i := range many {
		many[i] = c4
	}
	v6 := make([]id.Contact, MaxContacts)
	for i := range v6 {
		v6[i] = c6
	}
	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"store value over MaxValueSize", Message{Type: Store, Value: big}, ErrTooLarge},
		{"too many contacts", Message{Type: Nodes, Contacts: many}, ErrTooMany},
		{"32 IPv6 contacts fit", Message{Type: Nodes, Contacts: v6}, nil},
		{"too many values", Message{Type: Values, Values: make([]Value, MaxValues+1)}, ErrTooMany},
		{"values over MaxPacket", Message{Type: Values, Values: []Value{{Data: big[:MaxValueSize]}, {Data: big[:500]}}}, ErrTooLarge},
		{"error text too long", Message{Type: Error, Text: make([]byte, MaxErrorText+1)}, ErrTooLarge},
		{"unknown type", Message{Type: 0x42}, ErrUnknownType},
		{"put part over MaxPart", Message{Type: Put, Size: MaxPart + 1, Value: huge[:MaxPart+1]}, ErrTooLarge},
		{"put size over MaxRecordSize", Message{Type: Put, Size: MaxRecordSize + 1, Value: huge[:MaxPart]}, ErrTooLarge},
		{"put part past the end", Message{Type: Put, Size: 4, Value: []byte("hello")}, ErrInvalid},
		{"put part off the MaxPart grid", Message{Type: Put, Size: 2000, Offset: 100, Value: huge[:1200]}, ErrInvalid},
		{"put short part before the end", Message{Type: Put, Size: 2000, Value: huge[:100]}, ErrInvalid},
		{"put empty part at the end", Message{Type: Put, Size: 1200, Offset: 1200}, ErrInvalid},
		{"put empty value is one empty part", Message{Type: Put}, nil},
		{"put value of MaxRecordSize, last part", Message{Type: Put, Size: MaxRecordSize, Offset: MaxRecordSize / MaxPart * MaxPart, Value: huge[:MaxRecordSize%MaxPart]}, nil},
		{"put_ok status unknown", Message{Type: PutOK, Status: StatusPart + 1}, ErrInvalid},
		{"too many records", Message{Type: Records, Records: make([]Record, MaxRecords+1)}, ErrTooMany},
		{"record data neither all nor none", Message{Type: Records, Records: []Record{{Size: 6, Data: []byte("hello")}}}, ErrInvalid},
		{"record data without size", Message{Type: Records, Records: []Record{{Data: []byte("hello")}}}, ErrInvalid},
		{"record inline over MaxPart", Message{Type: Records, Records: []Record{{Size: MaxPart + 1, Data: huge[:MaxPart+1]}}}, ErrTooLarge},
		{"record size over MaxRecordSize", Message{Type: Records, Records: []Record{{Size: MaxRecordSize + 1}}}, ErrTooLarge},
		{"tombstone with a size", Message{Type: Records, Records: []Record{{Deleted: true, Size: 5}}}, ErrInvalid},
		{"records over MaxPacket", Message{Type: Records, Records: []Record{{Size: MaxPart, Data: huge[:MaxPart]}, {Size: 100, Data: huge[:100]}}}, ErrTooLarge},
		{"part past the end", Message{Type: Part, Size: 2404, Offset: 2400, Value: []byte("world")}, ErrInvalid},
		{"part over MaxPart", Message{Type: Part, Size: 5000, Value: huge[:MaxPart+1]}, ErrTooLarge},
		{"notify tombstone with data", Message{Type: Notify, Record: Record{Deleted: true, Size: 5, Data: []byte("hello")}}, ErrInvalid},
		{"contact without address", Message{Type: Nodes, Contacts: []id.Contact{{ID: sender}}}, ErrAddress},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("keep")
			b, err := c.m.Append(prefix)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if err != nil && string(b) != "keep" {
				t.Fatalf("failed Append changed the buffer to %q", b)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := func(name string) []byte {
		b, err := goldenMessages()[name].Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	nodes := valid("nodes")
	store := valid("store")
	values := valid("values")
	records, recordsFetch := valid("records"), valid("records_fetch")
	put, putPart, part := valid("put"), valid("put_part"), valid("part")
	set16 := func(b []byte, off int, v uint16) []byte {
		return mutate(b, func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b })
	}
	set32 := func(b []byte, off int, v uint32) []byte {
		return mutate(b, func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b })
	}
	// withData cuts b at nAt, the offset of a u16 length, and writes there
	// a length of n and n bytes of data, so that a length over a cap comes
	// with the bytes it claims; then a RECORDS' more and contacts' count.
	withData := func(b []byte, nAt, n int) []byte {
		b = append(append([]byte(nil), b[:nAt]...), byte(n>>8), byte(n))
		b = append(b, make([]byte, n)...)
		return append(b, 0, 0)
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header minus one", nodes[:HeaderLen-1], ErrShort},
		{"magic", mutate(nodes, func(b []byte) []byte { b[0] = 'd'; return b }), ErrMagic},
		{"version", mutate(nodes, func(b []byte) []byte { b[1] = 2; return b }), ErrVersion},
		{"unknown type", mutate(nodes, func(b []byte) []byte { b[2] = 0x7e; return b }), ErrUnknownType},
		{"truncated contacts", nodes[:len(nodes)-1], ErrTruncated},
		{"contact count over cap", mutate(nodes, func(b []byte) []byte { b[HeaderLen] = MaxContacts + 1; return b }), ErrTooMany},
		{"bad address family", mutate(nodes, func(b []byte) []byte { b[HeaderLen+1+20] = 5; return b }), ErrAddress},
		{"store length over cap", mutate(store, func(b []byte) []byte { b[HeaderLen+24] = 0xff; return b }), ErrTooLarge},
		{"store truncated value", store[:len(store)-2], ErrTruncated},
		{"values count over cap", mutate(values, func(b []byte) []byte { b[HeaderLen+1] = MaxValues + 1; return b }), ErrTooMany},
		{"find_node truncated target", valid("find_node")[:HeaderLen+19], ErrTruncated},

		// The storage messages' length rules (offsets: see docs/protocol.md).
		{"record data neither all nor none", set16(records, recordAt(1)+recN, 4), ErrInvalid},
		{"record data longer than its size", set16(records, recordAt(1)+recN, 6), ErrInvalid},
		{"tombstone with a size", set32(records, recordAt(0)+recSize, 5), ErrInvalid},
		{"value marked deleted keeps its size", mutate(records, func(b []byte) []byte { b[recordAt(1)+recFlags] = 1; return b }), ErrInvalid},
		{"record size over MaxRecordSize", set32(recordsFetch, recordAt(0)+recSize, MaxRecordSize+1), ErrTooLarge},
		{"record inline over MaxPart", withData(set32(recordsFetch, recordAt(0)+recSize, MaxPart+1), recordAt(0)+recN, MaxPart+1), ErrTooLarge},
		{"records count over cap", mutate(records, func(b []byte) []byte { b[HeaderLen] = MaxRecords + 1; return b }), ErrTooMany},
		{"records truncated inside a record", records[:recordAt(1)+recN+3], ErrTruncated},
		{"records truncated before more", records[:len(records)-2], ErrTruncated},
		{"put part past the end", set32(put, HeaderLen+putSize, 4), ErrInvalid},
		{"put part over MaxPart", withData(set32(put, HeaderLen+putSize, MaxPart+1), HeaderLen+putN, MaxPart+1), ErrTooLarge},
		{"put size over MaxRecordSize", set32(put, HeaderLen+putSize, MaxRecordSize+1), ErrTooLarge},
		{"put offset past 2^32", set32(put, HeaderLen+putOffset, 0xffffffff), ErrInvalid},
		{"put part off the MaxPart grid", set32(set32(putPart, HeaderLen+putSize, 2404), HeaderLen+putOffset, 2399), ErrInvalid},
		{"put short part before the end", set32(putPart, HeaderLen+putSize, 3605), ErrInvalid},
		{"put empty part at the end", set16(set32(putPart, HeaderLen+putSize, 2400), HeaderLen+putN, 0), ErrInvalid},
		{"put truncated data", put[:len(put)-1], ErrTruncated},
		{"part past the end", set32(part, HeaderLen, 2404), ErrInvalid},
		{"part offset past 2^32", set32(part, HeaderLen+4, 0xffffffff), ErrInvalid},
		{"part over MaxPart", withData(set32(set32(part, HeaderLen, 5000), HeaderLen+4, 0), HeaderLen+8, MaxPart+1), ErrTooLarge},
		{"part truncated data", part[:len(part)-1], ErrTruncated},
		{"put_ok status unknown", mutate(valid("put_ok"), func(b []byte) []byte { b[HeaderLen] = StatusPart + 1; return b }), ErrInvalid},
		{"put_ok truncated ttl", valid("put_ok")[:HeaderLen+4], ErrTruncated},
		{"deleted found neither 0 nor 1", mutate(valid("deleted"), func(b []byte) []byte { b[HeaderLen] = 2; return b }), ErrInvalid},
		{"notify record data neither all nor none", set16(valid("notify"), HeaderLen+id.Len+recN, 4), ErrInvalid},
		{"notify truncated record", valid("notify")[:HeaderLen+id.Len+recN], ErrTruncated},
		{"get truncated cursor", valid("get_cursor")[:HeaderLen+id.Len+1+8+19], ErrTruncated},
		{"fetch truncated offset", valid("fetch")[:HeaderLen+id.Len*2+8+3], ErrTruncated},
		{"delete truncated ttl", valid("delete")[:HeaderLen+id.Len*2+8+3], ErrTruncated},
		{"listen truncated ttl", valid("listen")[:HeaderLen+id.Len+3], ErrTruncated},
	}
	var m Message
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Decode(c.b, &m); !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, want %v", err, c.want)
			}
		})
	}
}

// Offsets of a Record's fields from its start, and of a PUT's from the
// body's, as docs/protocol.md lays them out.
const (
	recFlags  = id.Len + 8 + 4
	recSize   = recFlags + 1
	recN      = recSize + 4
	putSize   = 2*id.Len + 8 + 4
	putOffset = putSize + 4
	putN      = putOffset + 4
)

// recordAt is the offset of the i-th record of the "records" examples,
// every record before it a tombstone (39 bytes).
func recordAt(i int) int { return HeaderLen + 1 + i*RecordLen(0) }

func TestMappedIPv6DecodesAsIPv4(t *testing.T) {
	m := hdr(Nodes)
	m.Contacts = []id.Contact{{ID: sender, Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:53")}}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if ContactLen(m.Contacts[0]) != 27 {
		t.Fatal("a mapped address should be sized as IPv4")
	}
	var back Message
	if err := Decode(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Contacts[0].Addr; got != netip.MustParseAddrPort("10.0.0.1:53") {
		t.Fatalf("decoded %v", got)
	}
	// A peer that writes the mapped form as family 6 still yields IPv4.
	raw := append(b[:HeaderLen+1+20:HeaderLen+1+20], 6)
	a16 := netip.MustParseAddr("::ffff:10.0.0.1").As16()
	raw = append(raw, a16[:]...)
	raw = append(raw, 0, 53)
	if err := Decode(raw, &back); err != nil || !back.Contacts[0].Addr.Addr().Is4() {
		t.Fatalf("family-6 mapped address: %v %v", err, back.Contacts)
	}
}

func TestDecodedSlicesCannotOverwriteTheDatagram(t *testing.T) {
	for name, data := range map[string]func(m *Message) []byte{
		"store":  func(m *Message) []byte { return m.Value },
		"put":    func(m *Message) []byte { return m.Value },
		"part":   func(m *Message) []byte { return m.Value },
		"notify": func(m *Message) []byte { return m.Record.Data },
	} {
		b, _ := goldenMessages()[name].Append(nil)
		b = append(b, 0xAA) // a trailing byte an append on the data must not reach
		var m Message
		if err := Decode(b, &m); err != nil {
			t.Fatal(err)
		}
		_ = append(data(&m), 0x55)
		if b[len(b)-1] != 0xAA {
			t.Fatalf("%s: appending to a decoded slice wrote into the datagram", name)
		}
	}
	// A record's data is followed by the next record: an append must not
	// reach it either.
	b, _ := goldenMessages()["records"].Append(nil)
	var m Message
	if err := Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	_ = append(m.Records[1].Data, 0x55)
	if b[len(b)-2] != 1 { // more
		t.Fatal("appending to a record's data wrote into the datagram")
	}
}

func TestDecodeAndEncodeDoNotAllocate(t *testing.T) {
	var m Message
	buf := make([]byte, 0, MaxPacket)
	for name, g := range goldenMessages() {
		b, _ := g.Append(nil)
		if n := testing.AllocsPerRun(100, func() { _ = Decode(b, &m) }); n != 0 {
			t.Errorf("Decode(%s) allocates %v times", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = g.Append(buf[:0]) }); n != 0 {
			t.Errorf("Append(%s) allocates %v times", name, n)
		}
	}
	// The storage answers at their largest: as many records as a datagram
	// holds, decoded into the Message's own array.
	full := hdr(Records)
	for i := range 30 {
		full.Records = append(full.Records, Record{Publisher: pub, Version: uint64(i), TTL: 60, Size: 5000})
	}
	b, err := full.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Decode(b, &m) }); n != 0 {
		t.Errorf("Decode(RECORDS of 30) allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = full.Append(buf[:0]) }); n != 0 {
		t.Errorf("Append(RECORDS of 30) allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { m.Reset() }); n != 0 {
		t.Errorf("Reset allocates %v times", n)
	}
	// Errors are sentinels: rejecting garbage allocates nothing either.
	junk := []byte("this is not a message at all, but it is long enough")
	if n := testing.AllocsPerRun(100, func() { _ = Decode(junk, &m) }); n != 0 {
		t.Errorf("Decode(junk) allocates %v times", n)
	}
}

func TestTypeNames(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		want string
		req  bool
	}{{Ping, "PING", true}, {Store, "STORE", true}, {Values, "VALUES", false}, {Error, "ERROR", false}, {0x42, "TYPE_0x42", true},
		{Put, "PUT", true}, {Get, "GET", true}, {Fetch, "FETCH", true}, {Delete, "DELETE", true}, {Listen, "LISTEN", true}, {Notify, "NOTIFY", true},
		{PutOK, "PUT_OK", false}, {Records, "RECORDS", false}, {Part, "PART", false}, {Deleted, "DELETED", false},
		{Listening, "LISTENING", false}, {Notified, "NOTIFIED", false}, {Offer, "OFFER", true}, {Want, "WANT", false}} {
		if tc.t.String() != tc.want || tc.t.IsRequest() != tc.req {
			t.Errorf("%#x: %s %v", byte(tc.t), tc.t, tc.t.IsRequest())
		}
	}
	if Type(0x42).Known() || !Stored.Known() {
		t.Error("Known is wrong")
	}
	// Known, String, Append and Decode agree on which types exist: the
	// known ones are exactly those with a name, and each request's answer
	// is its number with the high bit set.
	for i := range 256 {
		typ := Type(i)
		named := !strings.HasPrefix(typ.String(), "TYPE_0x")
		_, err := (&Message{Type: typ}).Append(nil)
		if typ.Known() != named || typ.Known() != !errors.Is(err, ErrUnknownType) {
			t.Errorf("%s: Known %v, named %v, Append %v", typ, typ.Known(), named, err)
		}
		if typ.Known() && typ.IsRequest() && typ != Ping && !(typ | 0x80).Known() {
			t.Errorf("%s has no answer type %#x", typ, byte(typ|0x80))
		}
	}
}

// Every message carrying data or records stays within MaxPacket at its
// caps, so a node can always send one full part or one inline record; and
// the length helpers a node sizes its answers with are the encoder's.
func TestStorageMessagesFitAndHelpersMeasureThem(t *testing.T) {
	full := make([]byte, MaxPart)
	rec := Record{Publisher: pub, Version: ver, TTL: 1, Size: MaxPart, Data: full}
	for name, m := range map[string]Message{
		"PUT of MaxPart bytes":       {Type: Put, Size: MaxRecordSize, Value: full},
		"PART of MaxPart bytes":      {Type: Part, Size: MaxRecordSize, Value: full},
		"RECORDS with one full":      {Type: Records, Records: []Record{rec}, More: true},
		"NOTIFY of a full record":    {Type: Notify, Record: rec},
		"RECORDS of K IPv6 contacts": {Type: Records, Contacts: slices.Repeat([]id.Contact{c6}, 20)},
	} {
		if _, err := m.Append(nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	r := newRand(3, 4)
	for range 2000 {
		m := randomMessage(r)
		b, err := m.Append(nil)
		if err != nil {
			continue
		}
		want := len(b)
		switch m.Type {
		case Records:
			want = EmptyRecordsLen
			for _, rec := range m.Records {
				want += RecordLen(len(rec.Data))
			}
			for _, c := range m.Contacts {
				want += ContactLen(c)
			}
		case Part:
			want = PartLen(len(m.Value))
		case Notify:
			want = HeaderLen + id.Len + RecordLen(len(m.Record.Data))
		}
		if m.Flags&FlagToken != 0 && CarriesToken(m.Type) && (m.Type == Records || m.Type == Part || m.Type == Notify) {
			want += TokenLen // the helpers measure the body; a token is on top
		}
		if len(b) != want {
			t.Fatalf("%s is %d bytes, the helpers say %d: %s", m.Type, len(b), want, describe(m))
		}
	}
}

// GET and FETCH are padded like FIND_VALUE, and the padding decodes away;
// a GET without a cursor has one encoding, whatever the bytes after its
// flags say.
func TestGetAndFetchPadToMinFindValueLen(t *testing.T) {
	g := goldenMessages()
	for _, name := range []string{"get", "get_cursor", "fetch"} {
		b, err := g[name].Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MinFindValueLen {
			t.Fatalf("%s is %d bytes, more than its padded length", name, len(b))
		}
		var back Message
		if err := Decode(Pad(b, 0, MinFindValueLen), &back); err != nil || !equal(g[name], &back) {
			t.Fatalf("padded %s decodes to %v %s", name, err, describe(&back))
		}
	}
	b, _ := g["get_cursor"].Append(nil)
	b[HeaderLen+id.Len] = 0xfe // CURSOR clear, unknown bits set
	var back Message
	if err := Decode(b, &back); err != nil || back.Cursor || back.AfterVersion != 0 || back.AfterPublisher != (id.ID{}) {
		t.Fatalf("GET without CURSOR decodes to %v %s", err, describe(&back))
	}
	if enc, _ := back.Append(nil); !bytes.Equal(enc, mustGolden(t, "get")) {
		t.Fatalf("GET without CURSOR re-encodes as %x", enc)
	}
}

func mustGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := readGolden(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decode replaces every field: a Message reused for a storage message and
// then a legacy one (or the other way round) carries nothing over.
func TestDecodeReplacesEveryField(t *testing.T) {
	g := goldenMessages()
	var m Message
	for first := range g {
		for second, b := range g {
			if err := Decode(mustGolden(t, first), &m); err != nil {
				t.Fatal(err)
			}
			if err := Decode(mustGolden(t, second), &m); err != nil {
				t.Fatal(err)
			}
			if !equal(&m, b) {
				t.Fatalf("%s decoded after %s gives %s", second, first, describe(&m))
			}
		}
	}
}

// equal, which every round-trip test relies on, compares every exported
// field of Message and Record: setting any one of them makes a difference.
func TestEqualSeesEveryField(t *testing.T) {
	check := func(v reflect.Value, name string, differs func() bool) {
		for i := range v.NumField() {
			f := v.Field(i)
			if !v.Type().Field(i).IsExported() {
				continue
			}
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			setNonZero(f)
			if !differs() {
				t.Errorf("equal ignores %s.%s", name, v.Type().Field(i).Name)
			}
			f.Set(old)
		}
	}
	var a, b Message
	check(reflect.ValueOf(&a).Elem(), "Message", func() bool { return !equal(&a, &b) })
	var ra, rb Record
	check(reflect.ValueOf(&ra).Elem(), "Record", func() bool { return !equalRecord(&ra, &rb) })
}

// setNonZero sets f, an exported field of Message or Record, to a value
// other than its zero value.
func setNonZero(f reflect.Value) {
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(1)
	case reflect.Array: // id.ID
		f.Index(0).SetUint(1)
	case reflect.Slice:
		e := reflect.New(f.Type().Elem()).Elem()
		if e.Kind() == reflect.Uint8 {
			e.SetUint(1)
		}
		f.Set(reflect.Append(reflect.MakeSlice(f.Type(), 0, 1), e))
	case reflect.Struct:
		switch f.Interface().(type) {
		case netip.AddrPort:
			f.Set(reflect.ValueOf(netip.MustParseAddrPort("127.0.0.1:1")))
		default: // Record
			f.Field(0).Index(0).SetUint(1)
		}
	default:
		panic("setNonZero: unhandled " + f.Type().String())
	}
}

// Reset clears every exported field, the storage ones included.
func TestResetClearsEveryExportedField(t *testing.T) {
	var m Message
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).IsExported() {
			setNonZero(v.Field(i))
		}
	}
	m.Reset()
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() && !v.Field(i).IsZero() {
			t.Errorf("Reset left %s = %v", f.Name, v.Field(i))
		}
	}
}

func TestMessageZeroValueIsSafe(t *testing.T) {
	var m Message
	if _, err := m.Append(nil); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("zero message encodes: %v", err)
	}
	if !reflect.DeepEqual(m.Contacts, []id.Contact(nil)) {
		t.Fatal("zero message has contacts")
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"find_value", "nodes", "values", "records", "put"} {
		m := goldenMessages()[name]
		if name == "nodes" {
			m.Contacts = make([]id.Contact, 20)
			for i := range m.Contacts {
				m.Contacts[i] = c4
			}
		}
		buf := make([]byte, 0, MaxPacket)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = m.Append(buf[:0])
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"find_value", "nodes", "values", "records", "put"} {
		m := goldenMessages()[name]
		if name == "nodes" {
			m.Contacts = make([]id.Contact, 20)
			for i := range m.Contacts {
				m.Contacts[i] = c4
			}
		}
		raw, _ := m.Append(nil)
		var out Message
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := Decode(raw, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func newRand(a, b uint64) *rand.Rand { return rand.New(rand.NewPCG(a, b)) }

func TestResetClearsEveryField(t *testing.T) {
	for name, g := range goldenMessages() {
		m := *g
		m.Reset()
		var zero Message
		if !equal(&m, &zero) {
			t.Errorf("%s: Reset left %s", name, describe(&m))
		}
	}
}

// PUT's flags byte is optional: a PUT that ends after its data (as a node
// that predates the byte sends it) reads as flags 0, unknown bits are
// dropped, and a flag that is set survives the round trip.
func TestPutFlagsByteIsOptional(t *testing.T) {
	plain, err := goldenMessages()["put"].Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tail []byte
		want uint8
	}{{nil, 0}, {[]byte{0}, 0}, {[]byte{0xfe}, 0}, {[]byte{0xff}, PutEnvelope}, {[]byte{1, 7, 7}, PutEnvelope}} {
		var m Message
		if err := Decode(append(slices.Clip(plain), c.tail...), &m); err != nil {
			t.Fatalf("tail %x: %v", c.tail, err)
		}
		if m.PutFlags != c.want {
			t.Errorf("tail %x: flags %d, want %d", c.tail, m.PutFlags, c.want)
		}
	}
	empty := hdr(Put)
	empty.TTL, empty.PutFlags = 60, PutEnvelope
	if _, err := empty.Append(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("an empty enveloped PUT encodes: %v", err)
	}
}
