package sealed

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The example of docs/protocol.md, "Private networks": the PING of the
// protocol's examples (wire/testdata/golden/ping.hex), sealed with this
// secret and nonce.
const (
	goldenSecret   = "dhtkit example secret, 32 bytes!"
	goldenNetwork  = 0x0a0b0c0d
	goldenCounter  = 0x188c2b3e4f506172
	goldenInstance = 0x0102030405060708
	goldenRandom   = 0x1112131415161718
	goldenPlain    = "d70101000a0b0c0d11223344556677880102030405060708090a0b0c0d0e0f1011121314"
)

func readGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".hex")
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./transport/sealed -run Golden -update to create it)", err)
	}
	want, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestGolden(t *testing.T) {
	if len(goldenSecret) != 32 {
		t.Fatalf("the example secret has %d bytes", len(goldenSecret))
	}
	key, err := DeriveKey([]byte(goldenSecret), goldenNetwork)
	if err != nil {
		t.Fatal(err)
	}
	if want := readGolden(t, "key", key); !bytes.Equal(key, want) {
		t.Fatalf("key derivation changed:\n got %x\nwant %x", key, want)
	}
	plain, _ := hex.DecodeString(goldenPlain)
	k := mustKey(t, []byte(goldenSecret), goldenNetwork)
	got := k.Seal(nil, nonceOf(goldenCounter, goldenInstance, goldenRandom), plain)
	want := readGolden(t, "ping_sealed", got)
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed format changed:\n got %x\nwant %x", got, want)
	}
	back, c, inst, r := k.Open(nil, want)
	if r != Accepted || !bytes.Equal(back, plain) || c != goldenCounter || inst != goldenInstance {
		t.Fatalf("golden bytes open to %x (%v, %x, %x)", back, r, c, inst)
	}

	// docs/protocol.md shows the same bytes: the key and the sealed
	// datagram, in blocks of hex with spaces and line breaks.
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	i := strings.Index(sec, "\n## Private networks\n")
	if i < 0 {
		t.Fatal(`docs/protocol.md has no "## Private networks" section`)
	}
	sec = sec[i+1:]
	if j := strings.Index(sec, "\n## "); j >= 0 {
		sec = sec[:j]
	}
	blocks := regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(sec, -1)
	found := map[string]bool{}
	for _, b := range blocks {
		found[strings.Join(strings.Fields(b[1]), "")] = true
	}
	for name, b := range map[string][]byte{"key": key, "ping_sealed": want} {
		if !found[hex.EncodeToString(b)] {
			t.Errorf("docs/protocol.md, Private networks: no block shows %s.hex (%x)", name, b)
		}
	}
}
