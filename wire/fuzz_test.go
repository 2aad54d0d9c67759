package wire

import (
	"bytes"
	"testing"
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

// FuzzRoundTrip builds structured messages from fuzzer input and checks that
// each one that encodes decodes back to itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(0xdeadbeef), uint64(7))
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
