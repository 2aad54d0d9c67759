package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/client"
	"github.com/dhtkit/dht/node"
	"github.com/dhtkit/dht/record"
)

// keygen writes a private key file (0600) that record.LoadKeyFile reads
// back to the public key it printed, and refuses to overwrite one unless
// told to.
func TestKeygenWritesAPrivateKeyFileAndRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "me.key")
	code, out, errOut := runCmd("keygen", "-o", path)
	if code != exitOK {
		t.Fatalf("keygen: %d %q %q", code, out, errOut)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v, want 0600", err, st)
	}
	priv, err := record.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub := record.FormatPublicKey(priv.Public().(ed25519.PublicKey))
	if !strings.Contains(out, "public key "+pub) || !strings.Contains(out, path) {
		t.Errorf("keygen printed %q, want the public key %s and the path", out, pub)
	}
	before, _ := os.ReadFile(path)
	code, _, errOut = runCmd("keygen", "-o", path)
	if after, _ := os.ReadFile(path); code != exitUsage || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "-force") || string(after) != string(before) {
		t.Errorf("second keygen without -force: exit %d %q; the file changed: %v", code, errOut, string(after) != string(before))
	}
	code, out, _ = runCmd("keygen", "-o", path, "-force")
	if after, _ := os.ReadFile(path); code != exitOK || string(after) == string(before) || strings.Contains(out, pub) {
		t.Errorf("keygen -force: exit %d %q, file replaced %v", code, out, string(after) != string(before))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced key file has mode %v", st.Mode().Perm())
	}
	if code, _, errOut := runCmd("keygen", "extra"); code != exitUsage || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("keygen extra: %d %q", code, errOut)
	}
}

// joined starts n loopback nodes joined through the first; it returns them
// and the first one's address.
func joined(t *testing.T, n int) ([]*dht.Node, string) {
	t.Helper()
	nodes := loopbackNodes(t, n, 0)
	seed := nodes[0].Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range nodes[1:] {
		if err := nd.Bootstrap(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	return nodes, seed
}

// keyFile makes a key file with dht keygen and returns its path and the
// public key in hex.
func keyFile(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.key")
	if code, _, errOut := runCmd("keygen", "-o", path); code != exitOK {
		t.Fatalf("keygen: %d %q", code, errOut)
	}
	priv, err := record.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, record.FormatPublicKey(priv.Public().(ed25519.PublicKey))
}

// lineAfter returns the rest of the output line that starts with prefix.
func lineAfter(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return ""
}

// keygen, put -sign, get -mutable and del -sign, through a short-lived
// node on a loopback network: the key printed is SHA-1(public key ||
// salt), the get prints the verified value with the sequence put, one key
// pair owns one record per salt, a newer put replaces an older one, and the
// signed withdrawal deletes it.
func TestSignedRecordRoundTrip(t *testing.T) {
	_, seed := joined(t, 3)
	kf, pub := keyFile(t)
	pk, _ := record.ParsePublicKey(pub)

	code, out, errOut := runCmd("put", "--seeds", seed, "--sign", kf, "--seq", "5", "hello")
	if code != exitOK {
		t.Fatalf("put -sign: %d %q %q", code, out, errOut)
	}
	if got, want := lineAfter(out, "key "), record.MutableKey(pk, nil).String(); got != want {
		t.Errorf("put -sign printed key %q, want SHA-1(public key) %s", got, want)
	}
	if lineAfter(out, "seq ") != "5" || !strings.Contains(out, "stored on 3 of 3") {
		t.Errorf("put -sign output %q", out)
	}
	code, out, errOut = runCmd("get", "--seeds", seed, "--mutable", pub)
	if code != exitOK || !strings.HasPrefix(out, "hello\n  seq 5, signed by "+pub+", verified\n") {
		t.Fatalf("get -mutable: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("get", "--seeds", seed, "--mutable", pub, "--raw"); code != exitOK || out != "hello" {
		t.Errorf("get -mutable -raw: %d %q", code, out)
	}
	// Another salt is another record of the same key pair.
	if code, out, errOut := runCmd("put", "--seeds", seed, "--sign", kf, "--salt", "work", "at work"); code != exitOK || lineAfter(out, "key ") != record.MutableKey(pk, []byte("work")).String() {
		t.Fatalf("put -salt: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("get", "--seeds", seed, "--mutable", pub, "--salt", "work"); code != exitOK || !strings.HasPrefix(out, "at work\n") {
		t.Errorf("get -salt work: %d %q", code, out)
	}
	// An older sequence does not replace the newer one; a newer one does.
	if code, _, _ := runCmd("put", "--seeds", seed, "--sign", kf, "--seq", "4", "older"); code == exitOK {
		t.Errorf("put of seq 4 over 5 succeeded")
	}
	if code, out, errOut := runCmd("put", "--seeds", seed, "--sign", kf, "--seq", "6", "--cas", "5", "newer"); code != exitOK {
		t.Fatalf("put seq 6 cas 5: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("get", "--seeds", seed, "--mutable", pub, "--json"); code != exitOK || !strings.Contains(out, `"seq": 6`) || !strings.Contains(out, `"text": "newer"`) {
		t.Errorf("get -json after seq 6: %d %q", code, out)
	}
	// The owner's signed withdrawal deletes it; the other salt stays.
	if code, out, errOut := runCmd("delete", "--seeds", seed, "--sign", kf, "--seq", "7"); code != exitOK || !strings.Contains(out, "withdrawn from 3 of 3") {
		t.Fatalf("delete -sign: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCmd("get", "--seeds", seed, "--mutable", pub); code != exitNotFound {
		t.Errorf("get after the withdrawal: %d %q", code, errOut)
	}
	if code, _, _ := runCmd("get", "--seeds", seed, "--mutable", pub, "--salt", "work"); code != exitOK {
		t.Errorf("the salted record went with the withdrawal: exit %d", code)
	}
}

// A compare-and-swap whose expected sequence is not the one held fails
// with the nodes' conflict, and changes nothing.
func TestSignedPutWithAWrongCASFails(t *testing.T) {
	_, seed := joined(t, 3)
	kf, pub := keyFile(t)
	if code, out, errOut := runCmd("put", "--seeds", seed, "--sign", kf, "--seq", "10", "--cas", "0", "first"); code != exitOK {
		t.Fatalf("put cas 0: %d %q %q", code, out, errOut)
	}
	code, out, errOut := runCmd("put", "--seeds", seed, "--sign", kf, "--seq", "11", "--cas", "9", "second")
	if code != exitNetwork || !strings.Contains(errOut, "conflict") || !strings.Contains(out, "refused") {
		t.Errorf("put cas 9 over 10: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("get", "--seeds", seed, "--mutable", pub); code != exitOK || !strings.HasPrefix(out, "first\n  seq 10,") {
		t.Errorf("after the conflict: %d %q", code, out)
	}
}

// A typed record: put -type checks the document as storing nodes do, get
// -type prints it verified; -owner picks one owner's.
func TestTypedRecordRoundTrip(t *testing.T) {
	_, seed := joined(t, 3)
	kf, pub := keyFile(t)
	name := "alice@example.org:address"
	doc := `{"type":"address","user":"alice","server":"example.org","addresses":["203.0.113.7:4000"]}`
	code, out, errOut := runCmd("put", "--seeds", seed, "--type", "address", "--sign", kf, "--ttl", "30m", name, doc)
	if code != exitOK || lineAfter(out, "key ") != dht.Key(name).String() {
		t.Fatalf("put -type: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd("get", "--seeds", seed, "--type", "address", name)
	if code != exitOK || !strings.HasPrefix(out, doc+"\n  seq ") || !strings.Contains(out, "signed by "+pub) {
		t.Fatalf("get -type: %d %q %q", code, out, errOut)
	}
	_, other := keyFile(t)
	if code, _, _ := runCmd("get", "--seeds", seed, "--type", "address", "--owner", other, name); code != exitNotFound {
		t.Errorf("get -owner of someone else: exit %d", code)
	}
	if code, _, _ := runCmd("get", "--seeds", seed, "--type", "nickname", name); code != exitNotFound {
		t.Errorf("get -type of another type: exit %d", code)
	}
	if code, out, errOut := runCmd("del", "--seeds", seed, "--type", "address", "--sign", kf, name); code != exitOK || !strings.Contains(out, "withdrawn from 3 of 3") {
		t.Fatalf("del -type: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runCmd("get", "--seeds", seed, "--type", "address", name); code != exitNotFound {
		t.Errorf("get -type after the owner's withdrawal: exit %d", code)
	}
}

// A content-addressed record: put prints SHA-1(value), get checks it.
func TestImmutableRecordRoundTrip(t *testing.T) {
	_, seed := joined(t, 3)
	code, out, errOut := runCmd("put", "--seeds", seed, "--immutable", "the same bytes for everyone")
	want := record.ImmutableKey([]byte("the same bytes for everyone")).String()
	if code != exitOK || lineAfter(out, "key ") != want || strings.Contains(out, "seq ") {
		t.Fatalf("put -immutable: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCmd("get", "--seeds", seed, "--immutable", want); code != exitOK || out != "the same bytes for everyone\n" {
		t.Errorf("get -immutable: %d %q %q", code, out, errOut)
	}
}

// A typed document that breaks its type's rules is refused before it is
// sent, with the field named: the node is never asked.
func TestTypedPutThatBreaksARuleNamesTheFieldAndSendsNothing(t *testing.T) {
	n := newFakeNode(t)
	kf, _ := keyFile(t)
	name := "alice@example.org:address"
	for _, tc := range []struct{ doc, field string }{
		{`{"type":"address","user":"alice","server":"example.org","addresses":["not an address"]}`, "addresses"},
		{`{"type":"address","user":"alice","server":"example.org"}`, "addresses"},
		{`{"type":"address","user":"bob","server":"example.org","addresses":["203.0.113.7:4000"]}`, "name"},
	} {
		code, out, errOut := n.run("put", "--type", "address", "--sign", kf, name, tc.doc)
		if code != exitUsage || !strings.Contains(errOut, "not sent") || !strings.Contains(errOut, tc.field) || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 naming %q", tc.doc, code, out, errOut, tc.field)
		}
	}
	if code, _, errOut := n.run("put", "--type", "identity", "--sign", kf, name, `{"type":"address"}`); code != exitUsage || !strings.Contains(errOut, `"type" is "address"`) {
		t.Errorf("-type and the document's type differ: %d %q", code, errOut)
	}
	if _, err := n.f.Get(context.Background(), dht.Key(name)); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the node was sent something: %v", err)
	}
}

// apiNode is a real node joined to a loopback network, behind the real
// HTTP API, as dht node serves it.
func apiNode(t *testing.T) (*fakeNode, []*dht.Node) {
	t.Helper()
	nodes, _ := joined(t, 3)
	srv := httptest.NewServer(api.New(node.NewBackend(nodes[0], node.BackendOptions{}), api.Options{Token: testToken}))
	t.Cleanup(srv.Close)
	return &fakeNode{addr: srv.Listener.Addr().String(), srv: srv}, nodes
}

// Through a running node's API, the CLI sends a pre-signed envelope (the
// private key stays with the CLI) and reads it back verified; the other
// nodes of the network hold it too.
func TestSignedPutThroughTheAPIStoresThePreSignedEnvelope(t *testing.T) {
	n, nodes := apiNode(t)
	kf, pub := keyFile(t)
	pk, _ := record.ParsePublicKey(pub)
	code, out, errOut := n.run("put", "--sign", kf, "--salt", "s", "--seq", "3", "through the api")
	if code != exitOK || !strings.Contains(out, "stored on 3 of 3") {
		t.Fatalf("put -sign -api: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := n.run("get", "--mutable", pub, "--salt", "s"); code != exitOK || !strings.HasPrefix(out, "through the api\n  seq 3,") {
		t.Errorf("get -mutable -api: %d %q %q", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := nodes[2].GetMutable(ctx, pk, []byte("s"))
	if err != nil || string(r.Value) != "through the api" || r.Seq != 3 {
		t.Errorf("another node's GetMutable: %+v %v", r, err)
	}
	// A plain get through the API says it is an envelope, of kind signed.
	code, out, _ = n.run("get", "--hex", "--json", record.MutableKey(pk, []byte("s")).String())
	if code != exitOK || !strings.Contains(out, `"envelope": true`) || !strings.Contains(out, `"kind": "signed"`) {
		t.Errorf("get -json of the key: %d %q", code, out)
	}
}

// An envelope altered after it was signed is refused by the node behind the
// API with the reason (the signature), before anything is sent; so is one
// whose version is not the signed sequence.
func TestTamperedEnvelopeIsRefusedThroughTheAPIWithItsReason(t *testing.T) {
	n, nodes := apiNode(t)
	_, priv, _ := ed25519.GenerateKey(nil)
	key, _, data, err := record.NewSigned(priv, nil, 8, []byte("genuine"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(n.addr, client.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tampered := append([]byte(nil), data...)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name    string
		data    []byte
		version uint64
	}{{"altered value", tampered, 8}, {"other version", data, 9}} {
		_, err := c.Put(ctx, key, tc.data, api.PutOptions{Envelope: true, Version: tc.version})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalidRecord || ae.Status != 422 || !strings.Contains(ae.Message, "signature") {
			t.Errorf("%s: %v (%+v), want 422 invalid_record naming the signature", tc.name, err, ae)
		}
	}
	for _, nd := range nodes {
		if nd.Stats().StoredValues != 0 {
			t.Errorf("node %s stored something", nd.ID().Short())
		}
	}
	if _, err := c.Put(ctx, key, data, api.PutOptions{Envelope: true, Version: 8}); err != nil {
		t.Errorf("the genuine envelope: %v", err)
	}
}

// Record flags that do not go together, or need another, name themselves
// and what they need.
func TestRecordFlagsNameWhatTheyNeed(t *testing.T) {
	n := newFakeNode(t)
	kf, pub := keyFile(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "--salt", "s", "k", "v"}, "-salt applies only with -sign KEYFILE"},
		{[]string{"put", "--seq", "3", "k", "v"}, "-seq applies only with -sign KEYFILE"},
		{[]string{"put", "--cas", "3", "k", "v"}, "-cas applies only with -sign KEYFILE"},
		{[]string{"put", "--seq", "soon", "--sign", kf, "v"}, "-seq: must be auto or a whole number"},
		{[]string{"put", "--cas", "-1", "--sign", kf, "v"}, "-cas: must be a whole number"},
		{[]string{"put", "--type", "address", "n", "{}"}, "-type needs -sign KEYFILE"},
		{[]string{"put", "--immutable", "--sign", kf, "v"}, "-immutable"},
		{[]string{"put", "--sign", kf, "--publisher", strings.Repeat("ab", 20), "v"}, "-publisher does not apply"},
		{[]string{"put", "--sign", kf, "--keep", "v"}, "-keep does not apply"},
		{[]string{"put", "--sign", kf, "k", "v"}, `unexpected argument "v"`},
		{[]string{"put", "--sign", kf}, "missing VALUE"},
		{[]string{"put", "--sign", kf, ""}, "the value is empty"},
		{[]string{"put", "--sign", "/nonexistent.key", "v"}, "-sign: key file"},
		{[]string{"put", "--sign", kf, "--salt", strings.Repeat("s", 65), "v"}, "salt"},
		{[]string{"put", "--type", "address", "--sign", kf, "n"}, "missing NAME JSON"},
		{[]string{"get", "--salt", "s", "k"}, "-salt applies only with -mutable PUBKEY"},
		{[]string{"get", "--mutable", "beef", "k"}, "-mutable: must be a public key: 64 hex digits"},
		{[]string{"get", "--mutable", pub, "k"}, `unexpected argument "k"`},
		{[]string{"get", "--mutable", pub, "--type", "address", "n"}, "not both"},
		{[]string{"get", "--owner", pub, "k"}, "-owner applies only with -type TYPE"},
		{[]string{"get", "--immutable", "k"}, "bad KEY"},
		{[]string{"del", "--salt", "s", "k"}, "-salt applies only with -sign KEYFILE"},
		{[]string{"del", "--sign", kf, "k"}, `unexpected argument "k"`},
	} {
		code, out, errOut := n.run(tc.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		name := "dht " + tc.args[0]
		if code != exitUsage || len(lines) != 2 || !strings.HasPrefix(lines[0], name+": ") || !strings.Contains(lines[0], tc.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// A node that serves an altered record (here a fake that checks nothing)
// cannot make get print it: the CLI verifies each record itself, and says
// how many it left out.
func TestGetLeavesOutRecordsThatDoNotVerify(t *testing.T) {
	n := newFakeNode(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	key, publisher, data, err := record.NewSigned(priv, nil, 2, []byte("genuine"))
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), data...)
	forged[len(forged)-1] = '!'
	ctx := context.Background()
	if _, err := n.f.Put(ctx, key, forged, api.PutOptions{Envelope: true, Version: 2, Publisher: publisher}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := n.run("get", "--mutable", record.FormatPublicKey(pub))
	if code != exitNotFound || out != "" || !strings.Contains(errOut, "1 record(s) under the key failed verification") {
		t.Errorf("get of a forged record: %d %q %q", code, out, errOut)
	}
	if _, err := n.f.Put(ctx, key, data, api.PutOptions{Envelope: true, Version: 2, Publisher: publisher}); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := n.run("get", "--mutable", record.FormatPublicKey(pub)); code != exitOK || !strings.HasPrefix(out, "genuine\n") {
		t.Errorf("get of the genuine record: %d %q %q", code, out, errOut)
	}
}
