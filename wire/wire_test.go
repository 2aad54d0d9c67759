package wire

import (
	"bytes"
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
	return ms
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
	if len(a.Contacts) != len(b.Contacts) || len(a.Values) != len(b.Values) {
		return false
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

func describe(m *Message) string {
	return fmt.Sprintf("%s flags=%d net=%x tx=%x sender=%s target=%s ttl=%d value=%q values=%v more=%v contacts=%v observed=%v code=%d text=%q",
		m.Type, m.Flags, m.Network, m.TxID, m.Sender.Short(), m.Target.Short(), m.TTL, m.Value, m.Values, m.More, m.Contacts, m.Observed, m.Code, m.Text)
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
	types := []Type{Ping, FindNode, FindValue, Store, Error, Pong, Nodes, Values, Stored}
	m := hdr(types[r.IntN(len(types))])
	m.Flags = Flags(r.IntN(2))
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
	}
	return &m
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
	b, _ := goldenMessages()["store"].Append(nil)
	b = append(b, 0xAA) // a trailing byte an append on Value must not reach
	var m Message
	if err := Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	_ = append(m.Value, 0x55)
	if b[len(b)-1] != 0xAA {
		t.Fatal("appending to a decoded slice wrote into the datagram")
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
	}{{Ping, "PING", true}, {Store, "STORE", true}, {Values, "VALUES", false}, {Error, "ERROR", false}, {0x42, "TYPE_0x42", true}} {
		if tc.t.String() != tc.want || tc.t.IsRequest() != tc.req {
			t.Errorf("%#x: %s %v", byte(tc.t), tc.t, tc.t.IsRequest())
		}
	}
	if Type(0x42).Known() || !Stored.Known() {
		t.Error("Known is wrong")
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
	for _, name := range []string{"find_value", "nodes", "values"} {
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
	for _, name := range []string{"find_value", "nodes", "values"} {
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
