package node

import (
	"context"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
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
