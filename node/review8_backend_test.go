package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht"
)

// API subscribers coming and going at random, many at once, on a few keys
// while values are put: once the last one has left, no hub, pump goroutine
// or node subscription is left behind, and every subscriber's stream was
// closed.
func TestSubscriberChurnLeavesNoHubsOrSubscriptions(t *testing.T) {
	ns := udpNodes(t, 2)
	b := NewBackend(ns[1], BackendOptions{})
	keys := []dht.ID{dht.Key("churn 0"), dht.Key("churn 1"), dht.Key("churn 2")}
	var mu sync.Mutex
	hubs := map[*hub]bool{}
	stop := make(chan struct{})
	putDone := make(chan struct{})
	go func() {
		defer close(putDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ns[0].Put(ctx, keys[i%len(keys)], []byte(fmt.Sprint("v", i)))
			cancel()
		}
	}()
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				key := keys[(g+i)%len(keys)]
				ctx, cancel := context.WithCancel(context.Background())
				ch, err := b.Listen(ctx, key)
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				b.mu.Lock()
				h := b.hubs[key]
				b.mu.Unlock()
				mu.Lock()
				hubs[h] = true
				mu.Unlock()
				if (g+i)%2 == 0 {
					select { // sometimes wait for an event first
					case <-ch:
					case <-time.After(2 * time.Second):
					}
				}
				cancel()
				for range ch { // the stream ends
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-putDone
	b.mu.Lock()
	left := len(b.hubs)
	b.mu.Unlock()
	if left != 0 {
		t.Errorf("%d hubs left after every subscriber has gone", left)
	}
	for h := range hubs {
		select {
		case <-h.done:
		case <-time.After(20 * time.Second):
			t.Fatal("a hub's pump outlived its last subscriber")
		}
	}
	if got := ns[1].Stats().Subscriptions; got != 0 {
		t.Errorf("%d node subscriptions left after %d hubs ended", got, len(hubs))
	}
	t.Logf("%d hubs over the run", len(hubs))
}
