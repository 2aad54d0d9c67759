package dht

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Every network call returns when its context is done: at once for a
// context already canceled, and at the deadline for a lookup that is
// waiting on a node that will not answer.
func TestCallsReturnWhenTheirContextIsDone(t *testing.T) {
	a := loopbackNode(t, nil)
	b := loopbackNode(t, nil)
	ctx := context.Background()
	if err := a.Bootstrap(ctx, b.Addr().String()); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Get(canceled, Key("k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a canceled context: %v", err)
	}
	if _, err := a.Put(canceled, Key("k"), []byte("v"), WithTTL(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v", err)
	}
	// a's only peer is gone: its lookups wait for it, at least
	// MinRequestTimeout (100ms) before they give up on it.
	b.Close()
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err := a.Get(short, Key("k"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get past its deadline: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Get returned %v after its 20ms deadline", took)
	}
	// The abandoned lookup does not linger as an operation of the node.
	if _, err := a.FindNode(short, Key("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FindNode with an expired context: %v", err)
	}
}
