package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
)

// lossy is a UDP transport that drops a share of the datagrams it sends,
// replies included, from a seeded source.
type lossy struct {
	transport.Transport
	mu      sync.Mutex
	rng     *rand.Rand
	p       float64
	dropped int
}

func (l *lossy) drop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rng.Float64() < l.p {
		l.dropped++
		return true
	}
	return false
}

func (l *lossy) Send(pkts []transport.Packet) error {
	keep := pkts[:0:0]
	for _, p := range pkts {
		if !l.drop() {
			keep = append(keep, p)
		}
	}
	return l.Transport.Send(keep)
}

func (l *lossy) Start(h transport.Handler) error {
	return l.Transport.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		h.HandlePacket(data, from, lossyWriter{l, w})
	}))
}

type lossyWriter struct {
	l *lossy
	w transport.Writer
}

func (w lossyWriter) WriteTo(b []byte, to netip.AddrPort) {
	if !w.l.drop() {
		w.w.WriteTo(b, to)
	}
}

// A 64 KiB value is stored and read back over real UDP with 5% of all
// datagrams lost: its 55 parts each travel (and are resent) alone.
func TestLargeValueOverUDPWithLoss(t *testing.T) {
	const nodes = 12
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ls []*lossy
	ns := make([]*Node, nodes)
	for i := range ns {
		tr, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		l := &lossy{Transport: tr, rng: rand.New(rand.NewPCG(uint64(i), 5)), p: 0.05}
		ls = append(ls, l)
		// Loopback answers in microseconds: a short timeout keeps the
		// many resends of lost datagrams from dominating the test's time.
		ns[i] = loopbackNode(t, func(c *Config) { c.Transport = l; c.K = 8; c.RequestTimeout = 200 * time.Millisecond })
	}
	for _, n := range ns[1:] {
		if err := n.Bootstrap(ctx, ns[0].Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	value := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range value {
		value[i] = byte(r.Uint32())
	}
	key := Key("big over udp")
	pr, err := ns[3].Put(ctx, key, value, WithQuorum(4))
	if err != nil {
		t.Fatalf("put: %v (%+v)", err, pr.Receipts)
	}
	for _, n := range []*Node{ns[5], ns[9]} {
		gr, err := n.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(gr.Values) != 1 || !bytes.Equal(gr.Values[0].Data, value) {
			t.Fatalf("got %d values, incomplete %q: want the 64 KiB value back", len(gr.Values), gr.Incomplete)
		}
	}
	dropped := 0
	for _, l := range ls {
		l.mu.Lock()
		dropped += l.dropped
		l.mu.Unlock()
	}
	if dropped == 0 {
		t.Fatal("the transport dropped nothing: the test proves nothing")
	}
}

// A node with a data directory keeps its ID and its values across a
// restart, and serves them at once, before it has rejoined anyone.
func TestDataDirKeepsIDAndValuesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peer := loopbackNode(t, nil)
	n, err := New(Config{Listen: []string{"127.0.0.1:0"}, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Bootstrap(ctx, peer.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Put(ctx, Key("kept"), []byte("across restarts")); err != nil {
		t.Fatal(err)
	}
	oldID := n.ID()
	if _, ok := n.c.Store().Lookup(Key("kept"), peer.ID(), time.Now()); !ok {
		t.Fatal("the node did not store the value")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{IDFile, ValuesFile, ContactsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	n2, err := New(Config{Listen: []string{"127.0.0.1:0"}, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.ID() != oldID {
		t.Errorf("restarted with ID %v, want %v", n2.ID(), oldID)
	}
	vs := n2.c.Store().Get(Key("kept"), time.Now(), nil)
	if len(vs) != 1 || string(vs[0].Data) != "across restarts" {
		t.Fatalf("after the restart the store holds %+v", vs)
	}
}

// Five nodes with data directories, all stopped and restarted with the seed
// down, rejoin through the contacts they saved and serve every value.
func TestRestartedNetworkRejoinsWithoutItsSeed(t *testing.T) {
	const nodes, keys = 5, 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seed := loopbackNode(t, nil)
	dirs := make([]string, nodes)
	ns := make([]*Node, nodes)
	start := func(i int) *Node {
		// Fixed ports: a restarted node must be where the others saved it.
		// Below the kernel's ephemeral range (32768 and up), so that no
		// socket bound to port 0 elsewhere on the machine takes one while
		// its node is down.
		n, err := New(Config{Listen: []string{fmt.Sprintf("127.0.0.1:%d", 23300+i)}, DataDir: dirs[i]})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range ns {
		dirs[i] = t.TempDir()
		ns[i] = start(i)
		if err := ns[i].Bootstrap(ctx, seed.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	// Every node learns of every other (the seed handed them out).
	for _, n := range ns {
		if err := n.Bootstrap(ctx, seed.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	for k := range keys {
		if _, err := ns[k%nodes].Put(ctx, Key(fmt.Sprint("k", k)), []byte(fmt.Sprint("v", k))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range ns {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	seed.Close() // the seed is down for good
	for i := range ns {
		ns[i] = start(i)
		defer ns[i].Close()
	}
	var wg sync.WaitGroup
	for i, n := range ns {
		// The seed is down: the saved contacts are the way back.
		wg.Go(func() {
			if err := n.Bootstrap(ctx, seed.Addr().String()); err != nil {
				t.Errorf("node %d rejoining with its seed down: %v", i, err)
			}
		})
	}
	wg.Wait()
	for k := range keys {
		gr, err := ns[(k+2)%nodes].Get(ctx, Key(fmt.Sprint("k", k)))
		if err != nil || len(gr.Values) != 1 || string(gr.Values[0].Data) != fmt.Sprint("v", k) {
			t.Fatalf("key %d after the restart: %v %+v", k, err, gr.Values)
		}
	}
}

// A Delete by anyone but the publisher withdraws nothing and says so.
func TestDeleteByAnotherPublisherOverUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := loopbackNode(t, nil), loopbackNode(t, nil)
	if err := b.Bootstrap(ctx, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, Key("mine"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(ctx, Key("mine")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete by another publisher: %v, want ErrNotFound", err)
	}
	if gr, err := b.Get(ctx, Key("mine")); err != nil || len(gr.Values) != 1 {
		t.Fatalf("the value after a stranger's delete: %v %+v", err, gr.Values)
	}
	dr, err := a.Delete(ctx, Key("mine"))
	if err != nil || dr.Found == 0 {
		t.Fatalf("delete by the publisher: %v %+v", err, dr)
	}
	if _, err := b.Get(ctx, Key("mine")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after the publisher's delete: %v, want ErrNotFound", err)
	}
}
