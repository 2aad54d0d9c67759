package dht_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"time"

	"github.com/dhtkit/dht"
)

// startLoopback starts n nodes on 127.0.0.1, the others joined through the
// first.
func startLoopback(ctx context.Context, n int) []*dht.Node {
	var nodes []*dht.Node
	for i := range n {
		cfg := dht.DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		node, err := dht.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		if i > 0 {
			if err := node.Bootstrap(ctx, nodes[0].Addr().String()); err != nil {
				log.Fatal(err)
			}
		}
		nodes = append(nodes, node)
	}
	return nodes
}

// A signed record: only the holder of the private key can store or replace
// it, and every reader checks the signature. The key is the hash of the
// public key and the salt, so that a reader who knows both finds it.
func ExampleNode_PutSigned() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes := startLoopback(ctx, 3)
	for _, n := range nodes {
		defer n.Close()
	}

	// In a real program the key is generated once and kept.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	res, err := nodes[1].PutSigned(ctx, priv, []byte("address"), []byte("203.0.113.7:4000"), dht.WithVersion(1))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored on", res.Stored, "nodes at sequence", res.Version)

	// A later sequence replaces it; an older one would be refused.
	if _, err := nodes[1].PutSigned(ctx, priv, []byte("address"), []byte("203.0.113.8:4000"), dht.WithVersion(2)); err != nil {
		log.Fatal(err)
	}
	_, err = nodes[1].PutSigned(ctx, priv, []byte("address"), []byte("198.51.100.1:4000"), dht.WithVersion(1))
	fmt.Println(err != nil)
	// Output:
	// stored on 3 nodes at sequence 1
	// true
}

// Reading a signed record needs only the owner's public key and the salt.
func ExampleNode_GetMutable() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes := startLoopback(ctx, 3)
	for _, n := range nodes {
		defer n.Close()
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	if _, err := nodes[0].PutSigned(ctx, priv, nil, []byte("hello"), dht.WithVersion(5)); err != nil {
		log.Fatal(err)
	}

	pub := priv.Public().(ed25519.PublicKey)
	rec, err := nodes[2].GetMutable(ctx, pub, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sequence %d: %s\n", rec.Seq, rec.Value)

	// The owner withdraws it with a signed withdrawal.
	if _, err := nodes[0].WithdrawSigned(ctx, priv, nil, dht.WithVersion(6)); err != nil {
		log.Fatal(err)
	}
	rec, err = nodes[2].GetMutable(ctx, pub, nil)
	fmt.Println(rec.Seq, rec.Withdrawn, err)
	// Output:
	// sequence 5: hello
	// 6 true <nil>
}
