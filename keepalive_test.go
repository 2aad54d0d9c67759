package dht

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// memKeepAlives is a KeepAliveStore in memory, counting its saves.
type memKeepAlives struct {
	mu    sync.Mutex
	list  []KeepAliveInfo
	saves int
}

func (m *memKeepAlives) Load() ([]KeepAliveInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]KeepAliveInfo(nil), m.list...), nil
}

func (m *memKeepAlives) Save(l []KeepAliveInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.list, m.saves = l, m.saves+1
	return nil
}

func (m *memKeepAlives) snapshot() ([]KeepAliveInfo, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list, m.saves
}

// A node with a KeepAliveStore saves each change of its keep-alives before
// the call returns (and not for puts that change none), and a node started
// on the store resumes them.
func TestKeepAlivesSurviveARestartThroughTheStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seed := loopbackNode(t, nil)
	st := &memKeepAlives{}
	a := loopbackNode(t, func(c *Config) { c.KeepAliveStore = st })
	if err := a.Bootstrap(ctx, seed.Addr().String()); err != nil {
		t.Fatal(err)
	}
	key := Key("bob@id.example.org:address")
	put, err := a.Put(ctx, key, []byte("198.51.100.4:4000"), WithTTL(time.Hour), KeepAlive())
	if err != nil {
		t.Fatal(err)
	}
	list, saves := st.snapshot()
	if saves != 1 || len(list) != 1 || list[0].Key != key || list[0].Version != put.Version || string(list[0].Value) != "198.51.100.4:4000" || list[0].TTL != time.Hour {
		t.Fatalf("after the put: %d saves of %+v", saves, list)
	}
	if _, err := a.Put(ctx, Key("other"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, saves := st.snapshot(); saves != 1 {
		t.Fatalf("a put without KeepAlive saved the keep-alives (%d saves)", saves)
	}
	a.Close()

	b := loopbackNode(t, func(c *Config) { c.KeepAliveStore = st })
	ka := b.KeepAlives()
	if len(ka) != 1 || ka[0].Key != key || ka[0].Publisher != a.ID() || ka[0].Version != put.Version || ka[0].Next.IsZero() {
		t.Fatalf("restored: %+v", ka)
	}
	if ok, err := b.StopKeepAlive(key); ok || err != nil {
		t.Fatalf("StopKeepAlive of b's own publisher: %v %v, want none", ok, err)
	}
	if ok, err := b.StopKeepAlive(key, WithPublisher(a.ID())); !ok || err != nil {
		t.Fatalf("StopKeepAlive: %v %v", ok, err)
	}
	if list, _ := st.snapshot(); len(list) != 0 {
		t.Fatalf("after the stop the store holds %+v", list)
	}
}

// More saved keep-alives than Config.MaxKeepAlives stop New with an error
// that names the setting, rather than dropping some.
func TestRestoringPastMaxKeepAlivesFails(t *testing.T) {
	st := &memKeepAlives{}
	for i := range 3 {
		st.list = append(st.list, KeepAliveInfo{Key: Key(fmt.Sprint(i)), Publisher: Key("p"), Version: 1, Value: []byte("v"), TTL: time.Hour})
	}
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.KeepAliveStore, cfg.MaxKeepAlives = st, 2
	n, err := New(cfg)
	if err == nil {
		n.Close()
		t.Fatal("New took 3 keep-alives with MaxKeepAlives 2")
	}
	if !errors.Is(err, ErrKeepAliveLimit) || !strings.Contains(err.Error(), "Config.MaxKeepAlives is 2") {
		t.Fatalf("err = %v", err)
	}
}
