package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/dhtkit/dht/id"
)

// exampleToken is the token of docs/protocol.md's examples.
var exampleToken = Token{0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18}

// addTokenGolden adds the write-token examples of docs/protocol.md ("Write
// tokens"): each write carrying a token, a request asking for one, an
// answer carrying one, and the refusal that hands one out.
func addTokenGolden(add func(string, func(m *Message))) {
	tok := func(m *Message) { m.Flags |= FlagToken; m.Token = exampleToken }
	add("find_node_token", func(m *Message) { m.Type, m.Target, m.Flags = FindNode, target, FlagToken })
	add("nodes_token", func(m *Message) { m.Type, m.Contacts = Nodes, []id.Contact{c4}; tok(m) })
	add("store_token", func(m *Message) {
		m.Type, m.Target, m.TTL, m.Value = Store, target, 86400, []byte("hello")
		tok(m)
	})
	// A plain PUT with a token: the flags byte (0) is sent, then the token.
	add("put_token", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Put, target, pub, ver, 3600
		m.Size, m.Offset, m.Value = 5, 0, []byte("hello")
		tok(m)
	})
	add("put_ok_token", func(m *Message) { m.Type, m.Status, m.TTL = PutOK, StatusStored, 3600; tok(m) })
	add("delete_token", func(m *Message) {
		m.Type, m.Target, m.Publisher, m.Version, m.TTL = Delete, target, pub, ver2, 3600
		tok(m)
	})
	add("listen_token", func(m *Message) { m.Type, m.Target, m.TTL = Listen, target, 600; tok(m) })
	add("error_token", func(m *Message) {
		m.Type, m.Code, m.Text = Error, CodeToken, []byte("write token missing or stale")
		tok(m)
	})
}

// A token sits right after the body: an older node that ignores the flag
// reads the same body (the token is trailing bytes to it), and a message
// whose flag promises a token it lacks is truncated.
func TestTokenTrailer(t *testing.T) {
	for name, m := range goldenMessages() {
		if m.Flags&FlagToken == 0 || !CarriesToken(m.Type) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			b, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[len(b)-TokenLen:], exampleToken[:]) {
				t.Fatalf("the token is not the last %d bytes: %x", TokenLen, b)
			}
			var back Message
			for cut := 1; cut <= TokenLen; cut++ {
				if err := Decode(b[:len(b)-cut], &back); err == nil {
					t.Fatalf("decoded with %d bytes of the token missing", cut)
				}
			}
			old := bytes.Clone(b)
			old[3] &^= byte(FlagToken)
			if err := Decode(old, &back); err != nil {
				t.Fatalf("without the flag: %v", err)
			}
			plain := *m
			plain.Flags &^= FlagToken
			plain.Token = Token{}
			if m.Type == Put {
				// The flags byte, 0, is read as the optional byte.
				plain.PutFlags = 0
			}
			if !equal(&plain, &back) || back.Token != (Token{}) {
				t.Fatalf("without the flag the body reads\n%s\nwant\n%s", describe(&back), describe(&plain))
			}
		})
	}
}

// A request other than a write asks for a token and carries none: its
// padding is not read as one.
func TestTokenAskCarriesNone(t *testing.T) {
	m := hdr(FindNode)
	m.Flags, m.Target, m.Token = FlagToken, target, exampleToken
	b, _ := m.Append(nil)
	if len(b) != HeaderLen+20 {
		t.Fatalf("FIND_NODE with TOKEN is %d bytes, want %d", len(b), HeaderLen+20)
	}
	b = Pad(b, 0, MinFindNodeLen)
	var back Message
	if err := Decode(b, &back); err != nil || back.Token != (Token{}) || back.Flags != FlagToken {
		t.Fatalf("decoded %v %s", err, describe(&back))
	}
}

// FuzzToken writes every message that carries a token by hand, the body
// then the token, and checks the codec agrees: it decodes the token back,
// encodes the same bytes, and refuses every cut inside the token.
func FuzzToken(f *testing.F) {
	f.Add(uint8(0), uint64(1), uint8(0), uint8(5))
	f.Add(uint8(1), uint64(0xa1b2c3d4e5f60718), uint8(1), uint8(0))
	f.Add(uint8(2), uint64(0), uint8(0), uint8(3))
	f.Add(uint8(5), uint64(1<<63), uint8(0), uint8(9))
	f.Fuzz(func(t *testing.T, kind uint8, token uint64, putFlags uint8, n uint8) {
		types := []Type{Store, Put, Delete, Listen, Stored, PutOK, Deleted, Listening, Error, Nodes, Want, Pong}
		typ := types[int(kind)%len(types)]
		data := bytes.Repeat([]byte{'x'}, int(n)%64)
		var body []byte
		m := hdr(typ)
		m.Flags = FlagToken
		binary.BigEndian.PutUint64(m.Token[:], token)
		switch typ {
		case Store:
			m.Target, m.TTL, m.Value = target, 60, data
			body = append(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint32(append([]byte{}, target[:]...), 60), uint16(len(data))), data...)
		case Put:
			m.Target, m.Publisher, m.Version, m.TTL = target, pub, ver, 60
			m.Size, m.Value, m.PutFlags = uint32(len(data)), data, putFlags&PutEnvelope
			if len(data) == 0 {
				m.PutFlags = 0
			}
			body = append(append([]byte{}, target[:]...), pub[:]...)
			body = binary.BigEndian.AppendUint64(body, ver)
			body = binary.BigEndian.AppendUint32(body, 60)
			body = binary.BigEndian.AppendUint32(body, uint32(len(data)))
			body = binary.BigEndian.AppendUint32(body, 0)
			body = binary.BigEndian.AppendUint16(body, uint16(len(data)))
			body = append(body, data...)
			body = append(body, m.PutFlags) // always present before a token
		case Delete:
			m.Target, m.Publisher, m.Version, m.TTL = target, pub, ver, 60
			body = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(append(append([]byte{}, target[:]...), pub[:]...), ver), 60)
		case Listen:
			m.Target, m.TTL = target, 60
			body = binary.BigEndian.AppendUint32(append([]byte{}, target[:]...), 60)
		case Stored, Listening:
			m.TTL = 60
			body = binary.BigEndian.AppendUint32(nil, 60)
		case PutOK, Deleted:
			m.TTL = 60
			body = binary.BigEndian.AppendUint32([]byte{0}, 60)
		case Error:
			m.Code, m.Text = CodeToken, data
			body = append(append(binary.BigEndian.AppendUint16(nil, uint16(CodeToken)), byte(len(data))), data...)
		case Nodes:
			body = []byte{0}
		case Want:
			body = []byte{0}
		case Pong:
			m.Observed = c4.Addr
			body = []byte{4, 127, 0, 0, 1, 0x0f, 0xa0}
		}
		raw := append([]byte{Magic, Version, byte(typ), byte(FlagToken)}, 0x0a, 0x0b, 0x0c, 0x0d)
		raw = binary.BigEndian.AppendUint64(raw, 0x1122334455667788)
		raw = append(raw, sender[:]...)
		raw = append(append(raw, body...), m.Token[:]...)
		enc, err := m.Append(nil)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !bytes.Equal(enc, raw) {
			t.Fatalf("%s: encoded\n%x\nby hand\n%x", typ, enc, raw)
		}
		var back Message
		if err := Decode(raw, &back); err != nil || !equal(&m, &back) {
			t.Fatalf("%s: decoded %v\n%s\nwant\n%s", typ, err, describe(&back), describe(&m))
		}
		for cut := 1; cut <= TokenLen; cut++ {
			if Decode(raw[:len(raw)-cut], &back) == nil {
				t.Fatalf("%s: decoded with %d token bytes cut", typ, cut)
			}
		}
	})
}
