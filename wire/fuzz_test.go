package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/dhtkit/dht/id"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and
// whatever it accepts must survive a re-encode unchanged (decode, encode,
// decode gives the same message; encode of that gives the same bytes).
func FuzzDecode(f *testing.F) {
	for _, m := range goldenMessages() {
		b, _ := m.Append(nil)
		f.Add(b)
	}
	// Requests as nodes send them, padded with zero bytes: the trailing
	// bytes must decode away and the message re-encode without them.
	for _, p := range paddedGolden() {
		b, _ := p.m.Append(nil)
		f.Add(Pad(b, 0, p.n))
	}
	f.Add([]byte{})
	f.Add([]byte{Magic, Version})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := Decode(data, &m); err != nil {
			return
		}
		if msg := brokenRule(&m); msg != "" {
			t.Fatalf("Decode accepted a message that breaks a rule: %s\n%s", msg, describe(&m))
		}
		enc, err := m.Append(nil)
		if err != nil {
			// A decoded message can be re-encoded unless it is over MaxPacket
			// (a peer may send a longer datagram than we would).
			if len(data) <= MaxPacket {
				t.Fatalf("decoded message does not re-encode: %v\n%s", err, describe(&m))
			}
			return
		}
		var back Message
		if err := Decode(enc, &back); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !equal(&m, &back) {
			t.Fatalf("round trip changed the message:\n%s\n%s", describe(&m), describe(&back))
		}
		enc2, _ := back.Append(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not canonical:\n%x\n%x", enc, enc2)
		}
	})
}

// brokenRule says which length rule of docs/protocol.md a decoded message
// breaks, if any. It restates the rules independently of the codec's own
// checks, so that the fuzzer tests them rather than trusting them.
func brokenRule(m *Message) string {
	record := func(r *Record) string {
		n := len(r.Data)
		switch {
		case r.Size > MaxRecordSize:
			return "record size over MaxRecordSize"
		case n > MaxPart:
			return "record inline data over MaxPart"
		case n != 0 && n != int(r.Size):
			return "record data neither all of the value nor none"
		case r.Deleted && r.Size != 0:
			return "tombstone with a size"
		case r.Envelope && (r.Deleted || r.Size == 0):
			return "envelope that is a tombstone or empty"
		}
		return ""
	}
	end := int64(m.Offset) + int64(len(m.Value))
	switch m.Type {
	case Put, Part:
		switch {
		case m.Size > MaxRecordSize:
			return "size over MaxRecordSize"
		case len(m.Value) > MaxPart:
			return "part over MaxPart"
		case end > int64(m.Size):
			return "part past the end of the value"
		}
		if m.Type == Put && m.PutFlags&PutEnvelope != 0 && m.Size == 0 {
			return "empty enveloped PUT"
		}
		if m.PutFlags&^PutEnvelope != 0 {
			return "unknown PUT flags kept"
		}
		if m.Type == Put {
			want := min(MaxPart, int64(m.Size)-int64(m.Offset))
			if m.Offset%MaxPart != 0 || int64(len(m.Value)) != want || (want == 0 && m.Size != 0) {
				return "PUT part is not one of the value's consecutive MaxPart slices"
			}
		}
	case PutOK:
		if m.Status != StatusStored && m.Status != StatusPart {
			return "unknown PUT_OK status"
		}
	case Get:
		if !m.Cursor && (m.AfterVersion != 0 || m.AfterPublisher != (id.ID{})) {
			return "cursor fields without CURSOR"
		}
	case Records:
		if len(m.Records) > MaxRecords {
			return "too many records"
		}
		for i := range m.Records {
			if msg := record(&m.Records[i]); msg != "" {
				return msg
			}
		}
	case Notify:
		return record(&m.Record)
	case Offer:
		if len(m.Offers) > MaxOffer {
			return "too many digests"
		}
	case Want:
		for i, x := range m.Wants {
			if x >= MaxOffer || (i > 0 && x <= m.Wants[i-1]) {
				return "WANT indices not strictly ascending below MaxOffer"
			}
		}
	}
	return ""
}

// FuzzLengthRules drives the length fields of PUT, PART and a record with
// any numbers: Append accepts exactly what the rules allow, Decode of the
// same fields written by hand agrees, and what is accepted round-trips.
func FuzzLengthRules(f *testing.F) {
	f.Add(uint32(5), uint32(0), uint16(5), false, false)
	f.Add(uint32(2405), uint32(2400), uint16(5), false, false)
	f.Add(uint32(2405), uint32(1200), uint16(1200), false, true)
	f.Add(uint32(0), uint32(0), uint16(0), true, false)
	f.Add(uint32(0), uint32(0), uint16(0), false, true)
	f.Add(uint32(0), uint32(0), uint16(0), true, true)
	f.Add(uint32(MaxRecordSize), uint32(0), uint16(0), false, true)
	f.Add(uint32(MaxRecordSize+1), uint32(0), uint16(0), false, false)
	f.Add(uint32(1201), uint32(0), uint16(1201), false, false)
	f.Add(uint32(5), uint32(0xffffffff), uint16(5), false, false)
	f.Fuzz(func(t *testing.T, size, offset uint32, n uint16, deleted, envelope bool) {
		if n > MaxPart+8 {
			n = MaxPart + 8 // longer data only repeats the MaxPart case, slowly
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i)
		}
		var flags uint8
		if envelope {
			flags = PutEnvelope
		}
		for _, m := range []*Message{
			{Type: Put, Target: target, Publisher: pub, Version: ver, TTL: 60, Size: size, Offset: offset, Value: data, PutFlags: flags},
			{Type: Part, Size: size, Offset: offset, Value: data},
			{Type: Records, Records: []Record{{Publisher: pub, Version: ver, TTL: 60, Deleted: deleted, Envelope: envelope, Size: size, Data: data}}},
			{Type: Notify, Target: target, Record: Record{Publisher: pub, Version: ver, TTL: 60, Deleted: deleted, Envelope: envelope, Size: size, Data: data}},
		} {
			ok := brokenRule(m) == ""
			b, err := m.Append(nil)
			if ok != (err == nil) {
				t.Fatalf("%s size=%d offset=%d n=%d deleted=%v envelope=%v: rules say %v, Append says %v", m.Type, size, offset, n, deleted, envelope, ok, err)
			}
			raw := handWritten(m)
			var back Message
			derr := Decode(raw, &back)
			if ok != (derr == nil) {
				t.Fatalf("%s size=%d offset=%d n=%d deleted=%v envelope=%v: rules say %v, Decode says %v", m.Type, size, offset, n, deleted, envelope, ok, derr)
			}
			if !ok {
				continue
			}
			if !bytes.Equal(b, raw) || !equal(m, &back) {
				t.Fatalf("%s: encoded %x\nby hand %x\ndecoded %s", m.Type, b, raw, describe(&back))
			}
		}
	})
}

// handWritten lays out m's body field by field as docs/protocol.md's
// tables do, without the codec, for the types FuzzLengthRules builds.
func handWritten(m *Message) []byte {
	b := []byte{Magic, Version, byte(m.Type), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = append(b, m.Sender[:]...)
	record := func(r *Record) {
		b = append(b, r.Publisher[:]...)
		b = binary.BigEndian.AppendUint64(b, r.Version)
		b = binary.BigEndian.AppendUint32(b, r.TTL)
		var flags byte
		if r.Deleted {
			flags |= 1
		}
		if r.Envelope {
			flags |= 2
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint32(b, r.Size)
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.Data)))
		b = append(b, r.Data...)
	}
	switch m.Type {
	case Put:
		b = append(b, m.Target[:]...)
		b = append(b, m.Publisher[:]...)
		b = binary.BigEndian.AppendUint64(b, m.Version)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
		fallthrough
	case Part:
		b = binary.BigEndian.AppendUint32(b, m.Size)
		b = binary.BigEndian.AppendUint32(b, m.Offset)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Value)))
		b = append(b, m.Value...)
		if m.Type == Put && m.PutFlags != 0 {
			b = append(b, m.PutFlags) // the optional flags byte
		}
	case Records:
		b = append(b, byte(len(m.Records)))
		for i := range m.Records {
			record(&m.Records[i])
		}
		b = append(b, 0, 0) // more, contacts
	case Notify:
		b = append(b, m.Target[:]...)
		record(&m.Record)
	}
	return b
}

// FuzzRoundTrip builds structured messages from fuzzer input and checks that
// each one that encodes decodes back to itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(0xdeadbeef), uint64(7))
	f.Add(uint64(8), uint64(9))
	f.Add(uint64(1<<40), uint64(3))
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		m := randomMessage(newRand(s1, s2))
		b, err := m.Append(nil)
		if err != nil {
			return
		}
		var back Message
		if err := Decode(b, &back); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !equal(m, &back) {
			t.Fatalf("round trip changed the message:\n%s\n%s", describe(m), describe(&back))
		}
	})
}
