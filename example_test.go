package dht_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dhtkit/dht"
)

// A three-node network on the loopback interface: the first node starts the
// network, the others join through it, and a value stored through one node
// is found through another.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	start := func() *dht.Node {
		cfg := dht.DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		n, err := dht.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	seed := start()
	defer seed.Close()
	a, b := start(), start()
	defer a.Close()
	defer b.Close()
	for _, n := range []*dht.Node{a, b} {
		if err := n.Bootstrap(ctx, seed.Addr().String()); err != nil {
			log.Fatal(err)
		}
	}

	key := dht.Key("alice@id.example.org:address")
	put, err := a.Put(ctx, key, []byte("203.0.113.7:4000"), dht.WithTTL(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored on", put.Stored, "nodes")

	got, err := b.Get(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", got.Values[0].Data)

	_, err = b.Get(ctx, dht.Key("bob@id.example.org:address"))
	fmt.Println(errors.Is(err, dht.ErrNotFound))
	// Output:
	// stored on 3 nodes
	// 203.0.113.7:4000
	// true
}

// Config validation names the field at fault and what it allows.
func ExampleNew_badConfig() {
	cfg := dht.DefaultConfig()
	cfg.K = 100
	_, err := dht.New(cfg)
	fmt.Println(err)
	// Output: dht: Config.K is 100: must be between 1 and 32
}

// Keys are SHA-1 hashes of strings, so every implementation that hashes the
// same way agrees on where a string key lives.
func ExampleKey() {
	fmt.Println(dht.Key("hello"))
	// Output: aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d
}

// A value put with KeepAlive outlives its TTL: the node republishes it,
// same version and a fresh TTL, until StopKeepAlive or Delete.
func ExampleKeepAlive() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := dht.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	seed, err := dht.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer seed.Close()
	n, err := dht.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	if err := n.Bootstrap(ctx, seed.Addr().String()); err != nil {
		log.Fatal(err)
	}

	key := dht.Key("alice@id.example.org:online")
	if _, err := n.Put(ctx, key, []byte("yes"), dht.WithTTL(10*time.Minute), dht.KeepAlive()); err != nil {
		log.Fatal(err)
	}
	for _, ka := range n.KeepAlives() {
		fmt.Printf("keeping %q alive, republished in %v\n", ka.Value, ka.Next.Sub(time.Now()).Round(time.Minute))
	}

	stopped, err := n.StopKeepAlive(key)
	fmt.Println(stopped, err, len(n.KeepAlives()))
	// Output:
	// keeping "yes" alive, republished in 5m0s
	// true <nil> 0
}
