package sealed

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"
)

// FuzzOpen feeds arbitrary bytes to Open and to the whole receive path
// (format, tag, freshness, replay): nothing panics, nothing unsealed gets
// through, and a datagram that does open is delivered intact, once.
func FuzzOpen(f *testing.F) {
	plain, _ := hex.DecodeString(goldenPlain)
	k := mustKey(f, []byte(goldenSecret), goldenNetwork)
	golden := k.Seal(nil, nonceOf(goldenCounter, goldenInstance, goldenRandom), plain)
	f.Add(golden)
	f.Add(golden[:Overhead])
	f.Add(plain)
	f.Add([]byte{})
	f.Add([]byte{0xD7, 0x01, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, c, inst, r := k.Open(make([]byte, 0, 4), data)
		if r == Accepted {
			if len(out) != len(data)-Overhead {
				t.Fatalf("opened %d bytes from %d", len(out), len(data))
			}
			if again := k.Seal(nil, nonceOf(c, inst, 0), out); len(again) != len(data) {
				t.Fatalf("resealed length %d, want %d", len(again), len(data))
			}
		} else if len(out) != 0 {
			t.Fatalf("refused (%v) yet wrote %d bytes", r, len(out))
		}
		if r == Accepted && !bytes.Equal(data[:PrefixSize], k.prefix[:]) {
			t.Fatalf("accepted with prefix %x", data[:PrefixSize])
		}

		inner := &nopTransport{}
		now := time.Unix(0, goldenCounter)
		tr, err := New(inner, Config{Secret: []byte(goldenSecret), Network: goldenNetwork, Clock: fixedClock{now}, MaxSources: 2})
		if err != nil {
			t.Fatal(err)
		}
		var got collector
		tr.Start(&got)
		from := netip.MustParseAddrPort("127.0.0.1:9")
		for range 2 {
			inner.h.HandlePacket(data, from, nopWriter{})
		}
		if want := 0; r == Accepted {
			want = 1
			if got.count() != want || !bytes.Equal(got.got[0], out) {
				t.Fatalf("delivered %d, want the opened datagram once", got.count())
			}
		} else if got.count() != want {
			t.Fatalf("a refused datagram (%v) was delivered", r)
		}
	})
}
