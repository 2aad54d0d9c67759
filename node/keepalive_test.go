package node

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
)

func TestKeepAliveFileRoundTrip(t *testing.T) {
	d, err := OpenDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := d.KeepAlives()
	if l, err := st.Load(); err != nil || len(l) != 0 {
		t.Fatalf("a missing file: %v %v, want nothing", l, err)
	}
	want := []dht.KeepAliveInfo{
		{Key: dht.Key("a"), Publisher: dht.Key("p"), Version: 7, TTL: 90 * time.Minute, Quorum: 3, Value: []byte{0, 1, 2, 0xff}},
		{Key: dht.Key("b"), Publisher: dht.Key("q"), Version: 1 << 60, TTL: time.Minute, Value: []byte("text")},
	}
	if err := st.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load()
	if err != nil || len(got) != 2 {
		t.Fatalf("load: %v %v", got, err)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Key != w.Key || g.Publisher != w.Publisher || g.Version != w.Version || g.TTL != w.TTL || g.Quorum != w.Quorum || string(g.Value) != string(w.Value) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
	fi, err := os.Stat(d.File(KeepAliveFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if err := st.Save(nil); err != nil {
		t.Fatal(err)
	}
	if l, err := st.Load(); err != nil || len(l) != 0 {
		t.Fatalf("after saving none: %v %v", l, err)
	}
}

// A damaged file stops start-up with an error that names it, rather than
// being overwritten with an empty list.
func TestKeepAliveFileDamaged(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     "{",
		"bad key":      `{"keepalives":[{"key":"zz","publisher":"` + dht.Key("p").String() + `","version":1,"ttl":"1h","value":"eA=="}]}`,
		"bad ttl":      `{"keepalives":[{"key":"` + dht.Key("k").String() + `","publisher":"` + dht.Key("p").String() + `","version":1,"ttl":"soon","value":"eA=="}]}`,
		"no value":     `{"keepalives":[{"key":"` + dht.Key("k").String() + `","publisher":"` + dht.Key("p").String() + `","version":1,"ttl":"1h"}]}`,
		"version zero": `{"keepalives":[{"key":"` + dht.Key("k").String() + `","publisher":"` + dht.Key("p").String() + `","version":0,"ttl":"1h","value":"eA=="}]}`,
	} {
		d, err := OpenDataDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.File(KeepAliveFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = d.KeepAlives().Load()
		if err == nil || !strings.Contains(err.Error(), KeepAliveFile) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// `dht put --keep` through a daemon's API survives the daemon's restart
// (the file is written before the put answers), and `dht del` ends it.
func TestDaemonKeepsItsKeepAlivesAcrossRestarts(t *testing.T) {
	seed := plainNode(t)
	dir := t.TempDir()
	r := startDaemon(t, daemonConfig(dir, seedOf(seed.Addr())), Hooks{})
	r.wait(t, "joined", joined)
	b := NewBackend(r.svc.Node, BackendOptions{Status: r.svc.Status})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	key := dht.Key("carol@id.example.org:address")
	put, err := b.Put(ctx, key, []byte("192.0.2.9:4000"), api.PutOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := (DataDir{Path: dir}).KeepAlives().Load(); err != nil || len(l) != 1 || l[0].Version != put.Version {
		t.Fatalf("keepalives.json right after the put: %+v %v", l, err)
	}
	r.stop(t)

	r2 := startDaemon(t, daemonConfig(dir, seedOf(seed.Addr())), Hooks{})
	ka := r2.svc.Node.KeepAlives()
	if len(ka) != 1 || ka[0].Key != key || ka[0].Version != put.Version || string(ka[0].Value) != "192.0.2.9:4000" {
		t.Fatalf("restarted daemon keeps %+v", ka)
	}
	r2.wait(t, "joined", joined)
	b2 := NewBackend(r2.svc.Node, BackendOptions{Status: r2.svc.Status})
	if _, err := b2.Delete(ctx, key, api.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ka := r2.svc.Node.KeepAlives(); len(ka) != 0 {
		t.Fatalf("after dht del: %+v", ka)
	}
	if l, err := (DataDir{Path: dir}).KeepAlives().Load(); err != nil || len(l) != 0 {
		t.Fatalf("keepalives.json after the delete: %+v %v", l, err)
	}
}

// A short-lived node (no daemon) refuses a keep-alive it could not keep.
func TestShortLivedNodeRefusesKeep(t *testing.T) {
	n := plainNode(t)
	b := NewBackend(n, BackendOptions{})
	_, err := b.Put(context.Background(), dht.Key("k"), []byte("v"), api.PutOptions{Keep: true})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "running node") {
		t.Fatalf("err = %v", err)
	}
}
