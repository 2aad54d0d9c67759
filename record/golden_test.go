package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhtkit/dht/id"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenSeed is the fixed ed25519 seed of the golden examples (bytes 0x00
// to 0x1f), so that anyone can rebuild them from docs/protocol.md.
func goldenKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

const goldenDoc = `{"type":"address","user":"alice","server":"id.example.org","addresses":["203.0.113.7:4000"]}`

type goldenRecord struct {
	key, publisher id.ID
	version        uint64
	data           []byte
}

// goldenRecords are the examples of docs/protocol.md "Record kinds".
func goldenRecords(t testing.TB) map[string]goldenRecord {
	priv := goldenKey()
	out := map[string]goldenRecord{}
	k, d := NewImmutable([]byte("hello world"))
	out["immutable"] = goldenRecord{k, k, 0, d}
	k, p, d, err := NewSigned(priv, []byte("profile"), 1, []byte("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	out["signed"] = goldenRecord{k, p, 1, d}
	cas, err := WithCAS(d, 0)
	if err != nil {
		t.Fatal(err)
	}
	out["signed_cas"] = goldenRecord{k, p, 1, cas}
	k, p, d, err = NewSigned(priv, []byte("profile"), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	out["withdrawal"] = goldenRecord{k, p, 2, d}
	k, p, d, err = NewTyped(priv, "alice@id.example.org:address", 1, []byte(goldenDoc))
	if err != nil {
		t.Fatal(err)
	}
	out["typed"] = goldenRecord{k, p, 1, d}
	return out
}

// TestGolden pins each kind's bytes (ed25519 signatures are deterministic)
// in testdata/golden and checks that docs/protocol.md shows the same hex.
func TestGolden(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Join(strings.Fields(string(doc)), "")
	var p Policy
	for name, g := range goldenRecords(t) {
		path := filepath.Join("testdata", "golden", name+".hex")
		if *update {
			if err := os.WriteFile(path, []byte(hex.EncodeToString(g.data)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(g.data, want) {
			t.Errorf("%s: encoding changed:\n got %x\nwant %x", name, g.data, want)
		}
		// Check accepts each as a storing node; readers accept all but the
		// CAS form, which no node stores.
		v, err := p.Check(g.key, g.publisher, g.version, true, want, nil)
		if err != nil {
			t.Errorf("%s: Check: %v", name, err)
		}
		if _, err := p.Verify(g.key, g.publisher, g.version, v.Data); err != nil {
			t.Errorf("%s: Verify: %v", name, err)
		}
		// The spec shows the same bytes, split into fields by spaces and
		// line breaks, which the comparison ignores.
		if !strings.Contains(spec, hex.EncodeToString(want)) {
			t.Errorf("docs/protocol.md does not show %s.hex (%x)", name, want)
		}
		if !strings.Contains(spec, g.key.String()) {
			t.Errorf("docs/protocol.md does not show %s's key %s", name, g.key)
		}
	}
}
