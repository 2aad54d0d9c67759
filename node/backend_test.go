package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/record"
)

func udpNodes(t testing.TB, n int) []*dht.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ns []*dht.Node
	for i := range n {
		cfg := dht.DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		nd, err := dht.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		if i > 0 {
			if err := nd.Bootstrap(ctx, ns[0].Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		ns = append(ns, nd)
	}
	return ns
}

func next(t *testing.T, ch <-chan api.ValueEvent) api.ValueEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	return api.ValueEvent{}
}

// The API's subscribers to one key share one subscription of the node;
// one that joins late hears the latest value first; the node's
// subscription ends with the last API subscriber.
func TestAPISubscribersShareOneSubscription(t *testing.T) {
	ns := udpNodes(t, 3)
	b := NewBackend(ns[1], BackendOptions{})
	key := dht.Key("shared")
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	a1, err := b.Listen(ctx1, key)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.Listen(ctx2, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := ns[1].Stats().Subscriptions; got != 1 {
		t.Fatalf("%d node subscriptions for two API subscribers, want 1", got)
	}
	if _, err := ns[2].Put(context.Background(), key, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan api.ValueEvent{a1, a2} {
		if e := next(t, ch); e.Kind != api.EventPut || string(e.Value.Data) != "hello" {
			t.Fatalf("event %+v, want the put", e)
		}
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	a3, err := b.Listen(ctx3, key)
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, a3); string(e.Value.Data) != "hello" {
		t.Fatalf("a late subscriber's first event %+v, want the latest value", e)
	}
	b.mu.Lock()
	h := b.hubs[key]
	b.mu.Unlock()
	cancel1()
	cancel2()
	cancel3()
	for _, ch := range []<-chan api.ValueEvent{a1, a2, a3} {
		for range ch { // each stream ends
		}
	}
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the node's subscription outlived its last API subscriber")
	}
	if got := ns[1].Stats().Subscriptions; got != 0 {
		t.Fatalf("%d node subscriptions after the last API subscriber left", got)
	}
}

// The Backend stores a pre-signed envelope as it is (the publisher being
// its key's hash), reports its kind on Get, refuses a forged one with
// api.ErrInvalid before it is sent, and a wrong CAS with api.ErrConflict.
func TestBackendPutsPreSignedEnvelopes(t *testing.T) {
	ns := udpNodes(t, 3)
	b := NewBackend(ns[0], BackendOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, priv, _ := ed25519.GenerateKey(nil)
	key, pub, data, err := record.NewSigned(priv, []byte("salt"), 4, []byte("v4"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Put(ctx, key, data, api.PutOptions{Envelope: true, Version: 4})
	if err != nil || res.Publisher != pub || res.Version != 4 || res.Stored != 3 {
		t.Fatalf("put: %+v %v", res, err)
	}
	got, err := b.Get(ctx, key)
	if err != nil || len(got.Values) != 1 || !got.Values[0].Envelope || got.Values[0].Kind != "signed" || got.Values[0].Version != 4 {
		t.Fatalf("get: %+v %v", got, err)
	}
	forged := append([]byte(nil), data...)
	forged[len(forged)-1] ^= 0x20
	if _, err := b.Put(ctx, key, forged, api.PutOptions{Envelope: true, Version: 4}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("forged envelope: %v, want ErrInvalid", err)
	}
	if _, err := b.Put(ctx, key, data, api.PutOptions{Envelope: true, Version: 4, Publisher: pub}); !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("envelope with a publisher: %v, want ErrBadRequest", err)
	}
	_, _, v5, _ := record.NewSigned(priv, []byte("salt"), 5, []byte("v5"))
	v5, _ = record.WithCAS(v5, 3)
	if _, err := b.Put(ctx, key, v5, api.PutOptions{Envelope: true, Version: 5}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("wrong cas: %v, want ErrConflict", err)
	}
}
