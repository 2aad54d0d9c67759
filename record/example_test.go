package record_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/dhtkit/dht/record"
)

// A publisher signs a record; a storing node checks it; a reader verifies it.
func ExampleNewSigned() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key, publisher, data, err := record.NewSigned(priv, []byte("profile"), 1, []byte("hello"))
	if err != nil {
		panic(err)
	}
	var node record.Policy // plain records allowed, built-in types
	v, err := node.Check(key, publisher, 1, true, data, nil)
	fmt.Println(v.Kind, err)
	// A holder that serves it as another version is caught.
	_, err = node.Verify(key, publisher, 2, data)
	fmt.Println(err)
	// Output:
	// signed <nil>
	// record: invalid signature: the ed25519 signature does not verify for this sequence (version)
}

// Compare-and-swap: "store only if you hold my sequence 1".
func ExampleWithCAS() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key, publisher, data, _ := record.NewSigned(priv, nil, 2, []byte("v2"))
	put, _ := record.WithCAS(data, 1)
	var node record.Policy
	_, err := node.Check(key, publisher, 2, true, put, &record.Held{Version: 3, Envelope: true})
	fmt.Println(err)
	// Output: record: conflict cas: expected sequence 1, but 3 is held
}

// A typed record: a signed JSON document checked against its type.
func ExampleNewTyped() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	doc := []byte(`{"type":"address","user":"alice","server":"id.example.org","addresses":["203.0.113.7:4000"]}`)
	key, publisher, data, _ := record.NewTyped(priv, "alice@id.example.org:address", 1, doc)
	var node record.Policy
	v, err := node.Check(key, publisher, 1, true, data, nil)
	fmt.Println(v.MaxTTL, err)
	// Under another user's name, the name rule refuses it.
	key, publisher, data, _ = record.NewTyped(priv, "bob@id.example.org:address", 1, doc)
	_, err = node.Check(key, publisher, 1, true, data, nil)
	fmt.Println(err)
	// Output:
	// 1h0m0s <nil>
	// record: invalid name: the name "bob@id.example.org:address" does not match "{user}@{server}:address" for this document
}

// A program registers its own type on a copy of the built-in registry.
func ExampleRegistry_Register() {
	reg := record.Builtin()
	err := reg.Register(record.Type{
		Name:     "note",
		NameRule: "note:{title}",
		Fields: []record.Field{
			{Name: "title", Format: record.Token, Required: true},
			{Name: "body", Format: record.Text, Required: true, MaxLen: 1000},
		},
	})
	fmt.Println(err)
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key, publisher, data, _ := record.NewTyped(priv, "note:todo", 1, []byte(`{"type":"note","title":"todo","body":"write docs"}`))
	node := record.Policy{Types: reg}
	_, err = node.Check(key, publisher, 1, true, data, nil)
	fmt.Println(err)
	// Output:
	// <nil>
	// <nil>
}

// Key files: what `dht keygen` writes and a node loads.
func ExampleMarshalPrivateKey() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	text, _ := record.MarshalPrivateKey(priv)
	fmt.Print(string(text))
	back, err := record.ParsePrivateKey(text)
	fmt.Println(back.Equal(priv), err)
	// Output:
	// dhtkit ed25519 private key v1
	// seed 0000000000000000000000000000000000000000000000000000000000000000
	// public 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
	// true <nil>
}
