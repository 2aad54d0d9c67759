package dht

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/wire"
)

// loopbackNet starts n nodes on 127.0.0.1 joined through the first.
func loopbackNet(t *testing.T, ctx context.Context, n int) []*Node {
	t.Helper()
	var nodes []*Node
	for i := range n {
		cfg := DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		node, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		if i > 0 {
			if err := node.Bootstrap(ctx, nodes[0].Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, node)
	}
	return nodes
}

// The public calls of the record kinds end to end: a signed record read
// back verified; a stale sequence and a CAS conflict refused with their
// reasons in the receipts and the matching errors; a content-addressed
// record read back by its hash; options that a kind decides refused.
func TestSignedAndImmutableRecordsThroughThePublicAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := loopbackNet(t, ctx, 4)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	salt := []byte("profile")

	res, err := nodes[1].PutSigned(ctx, priv, salt, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != record.MutableKey(pub, salt) || res.Publisher != record.PublisherOf(pub) || res.Version == 0 {
		t.Fatalf("put result names key %s publisher %s version %d", res.Key.Short(), res.Publisher.Short(), res.Version)
	}
	first := res.Version
	res, err = nodes[1].PutSigned(ctx, priv, salt, []byte("v2"))
	if err != nil || res.Version <= first {
		t.Fatalf("second put: %v, sequence %d after %d (the default must grow)", err, res.Version, first)
	}
	got, err := nodes[3].GetMutable(ctx, pub, salt)
	if err != nil || got.Seq != res.Version || string(got.Value) != "v2" || got.Withdrawn {
		t.Fatalf("GetMutable = %+v, %v", got, err)
	}

	res, err = nodes[2].PutSigned(ctx, priv, salt, []byte("old"), WithVersion(first))
	if !errors.Is(err, ErrRejected) || res.Count(Refused) == 0 {
		t.Fatalf("stale put: %v, %d refusals", err, res.Count(Refused))
	}
	for _, rc := range res.Receipts {
		if rc.Outcome == Refused && (rc.Code != wire.CodeStale || !strings.Contains(rc.Reason, "not newer")) {
			t.Fatalf("stale receipt %+v", rc)
		}
	}
	res, err = nodes[2].PutSigned(ctx, priv, salt, []byte("v3"), WithCAS(first))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("CAS on an old sequence: %v, want ErrConflict", err)
	}
	if rc := res.Receipts[0]; rc.Code != wire.CodeConflict || !strings.Contains(rc.Reason, "cas") {
		t.Fatalf("CAS receipt %+v, want CONFLICT naming the cas field", rc)
	}
	if _, err := nodes[2].PutSigned(ctx, priv, salt, []byte("v3"), WithCAS(got.Seq)); err != nil {
		t.Fatalf("CAS on the held sequence: %v", err)
	}

	key, _, err := nodes[0].PutImmutable(ctx, []byte("a document"))
	if err != nil {
		t.Fatal(err)
	}
	if key != Key("a document") {
		t.Fatalf("immutable key %s, want SHA-1 of the bytes", key.Short())
	}
	if v, err := nodes[3].GetImmutable(ctx, key); err != nil || string(v) != "a document" {
		t.Fatalf("GetImmutable = %q, %v", v, err)
	}
	if _, err := nodes[3].GetImmutable(ctx, Key("nothing here")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetImmutable of an empty key: %v, want ErrNotFound", err)
	}
	if _, err := nodes[3].GetMutable(ctx, pub, []byte("other salt")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetMutable of another salt: %v, want ErrNotFound", err)
	}

	for _, opt := range []PutOption{KeepAlive(), Anonymous(), WithPublisher(Key("x"))} {
		if _, err := nodes[0].PutSigned(ctx, priv, salt, []byte("x"), opt); err == nil {
			t.Fatal("PutSigned took an option its kind decides")
		}
	}
	if _, err := nodes[0].Put(ctx, Key("k"), []byte("x"), WithCAS(1)); err == nil {
		t.Fatal("Put took WithCAS")
	}
}

// A typed record through the public API: one that keeps its type's rules is
// read back by name and owner; one that breaks them is refused by every
// node with the field named, and the put fails with ErrInvalid.
func TestTypedRecordsThroughThePublicAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := loopbackNet(t, ctx, 4)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{10}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	const name = "nickname:alice"
	doc := `{"type":"nickname","nickname":"alice","owner":"https://id.example.org/alice"}`
	if _, err := nodes[1].PutTyped(ctx, priv, name, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	got, err := nodes[2].GetTyped(ctx, name, pub)
	if err != nil || string(got.Value) != doc {
		t.Fatalf("GetTyped = %+v, %v", got, err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{11}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	if _, err := nodes[2].GetTyped(ctx, name, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetTyped of another owner: %v, want ErrNotFound", err)
	}
	res, err := nodes[1].PutTyped(ctx, priv, name, []byte(`{"type":"nickname","nickname":"alice"}`))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrRejected) {
		t.Fatalf("a nickname without its owner: %v, want ErrInvalid", err)
	}
	for _, rc := range res.Receipts {
		if rc.Outcome != Refused || rc.Code != wire.CodeInvalid || !strings.Contains(rc.Reason, "owner") {
			t.Fatalf("receipt %+v, want a refusal naming the owner field", rc)
		}
	}
}
