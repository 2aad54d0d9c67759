package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/client"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/node"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
)

// The kill -9 loop's writes: kill9Writers goroutines, each owning
// kill9Keys/kill9Writers keys, put versions that only grow; the value of
// (key, version) is a function of the two, so that any record found can be
// checked intact.
const (
	kill9Keys    = 64
	kill9Writers = 4
)

func kill9Key(k int) id.ID { return id.Key(fmt.Sprintf("kill9/%d", k)) }

func kill9Value(k int, ver uint64) []byte {
	var seed [16]byte
	binary.BigEndian.PutUint64(seed[0:], uint64(k))
	binary.BigEndian.PutUint64(seed[8:], ver)
	h := sha256.Sum256(seed[:])
	n := 1 + int(binary.BigEndian.Uint16(h[:])%2500) // one part or three
	return bytes.Repeat(h[:], n/len(h)+1)[:n]
}

// A `dht node --data DIR` process killed with SIGKILL at a random moment of
// a tight loop of PUTs through its HTTP API, and restarted on the same data
// directory, many times: after each kill bbolt opens its values.db, the file
// passes bbolt's consistency check, and every acknowledged value is in it
// (or a newer version of it), intact; after each restart the node serves
// them through its API.
//
// "Acknowledged" here: the API's PUT answered 200 with Local set, which the
// node reports only once its own copy is durable (its store's Sync reported
// the commit). A put needs another node's acceptance to succeed at all (a
// copy on one node alone is not in the network), so the network has two
// nodes: the victim, written through and killed, and a peer that stays up.
// Since the peer holds every value too, reads through the API would not
// prove the victim kept them: the victim's store is read directly after each
// kill, and at the end the peer is stopped and the restarted victim, alone,
// must serve every acknowledged value through its API's get.
func TestKill9NodeProcessLosesNoAcknowledgedValue(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a node process many times; run without -short")
	}
	bin := buildDHT(t)
	ports := freePorts(t, 2)
	nets := filepath.Join(t.TempDir(), "networks.json")
	seeds := fmt.Sprintf(`{"host": "127.0.0.1", "udp_port": %d}, {"host": "127.0.0.1", "udp_port": %d}`, ports[0], ports[1])
	if err := os.WriteFile(nets, []byte(`{"e2e": {"label": "kill -9", "dht-seeds": [`+seeds+`]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	peer := startDaemon(t, bin, nets, filepath.Join(root, "peer"), ports[0])
	dir := filepath.Join(root, "victim")

	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 9))
	acked := map[int]uint64{} // highest acknowledged version of each key
	const kills, budget = 15, 90 * time.Second
	start, total, it := time.Now(), 0, 0
	for ; it < kills && time.Since(start) < budget; it++ {
		v := startDaemon(t, bin, nets, dir, ports[1])
		c := kill9Client(t, v)
		if it > 0 {
			checkServed(t, c, acked, 8, r, fmt.Sprintf("restart %d", it))
		}
		// Most kills come at a random moment of the write loop, after its
		// first acknowledgement; one in four at a random moment from the
		// API's start, before anything may have been acknowledged (while
		// the node rejoins, or opens its store).
		early := r.IntN(4) == 0
		after := time.Duration(r.Int64N(int64(1500 * time.Millisecond)))
		if early {
			after = time.Duration(r.Int64N(int64(300 * time.Millisecond)))
		}
		total += kill9Loop(t, v, c, it, early, after, acked)
		checkKilledStore(t, filepath.Join(dir, node.StoreFile), acked, fmt.Sprintf("kill %d (seed %d)", it+1, seed))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills in %v, %d acknowledged puts, %d keys (seed %d)", it, time.Since(start).Round(time.Millisecond), total, len(acked), seed)
	if total == 0 || it < 5 {
		t.Fatalf("%d kills, %d acknowledged puts: the test tested too little", it, total)
	}
	// The peer down, the victim alone serves every acknowledged value.
	peer.stop(syscall.SIGTERM)
	v := startDaemon(t, bin, nets, dir, ports[1])
	checkServed(t, kill9Client(t, v), acked, len(acked), r, "alone after the last restart")
}

func kill9Client(t *testing.T, d *daemon) *client.Client {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(d.dir, node.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(d.api, client.Options{Token: strings.TrimSpace(string(token))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kill9Loop writes through d's API until after has passed (counted from the
// first acknowledgement, or from the start when early), then kills d with
// SIGKILL while the writers are still at it. It adds what was acknowledged
// to acked and returns the number of acknowledgements.
func kill9Loop(t *testing.T, d *daemon, c *client.Client, it int, early bool, after time.Duration, acked map[int]uint64) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[int]uint64{}
	n := 0
	first := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range kill9Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Versions above every earlier run's: the iteration in the
			// high bits, a counter below.
			ver := uint64(it+1) << 32
			for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
				k := w + kill9Writers*(i%(kill9Keys/kill9Writers))
				ver++
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				res, err := c.Put(pctx, kill9Key(k), kill9Value(k, ver), api.PutOptions{TTL: time.Hour, Version: ver})
				pcancel()
				if err != nil || !res.Local {
					continue // not acknowledged: the node is starting, or dying
				}
				mu.Lock()
				got[k] = max(got[k], ver)
				n++
				mu.Unlock()
				once.Do(func() { close(first) })
			}
		}()
	}
	if !early {
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			t.Fatalf("iteration %d: no put acknowledged within 30s", it)
		}
	}
	time.Sleep(after) // the random moment of the kill, not a wait for an event
	d.stop(syscall.SIGKILL)
	cancel()
	wg.Wait()
	for k, ver := range got {
		acked[k] = max(acked[k], ver)
	}
	return n
}

// checkKilledStore checks the values.db a killed node left: bbolt opens it,
// it passes bbolt's consistency check, every acknowledged value is there at
// its version or a newer one, and each record held is one a writer put,
// whole.
func checkKilledStore(t *testing.T, path string, acked map[int]uint64, when string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("after %s: bbolt cannot open %s: %v", when, path, err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("after %s: bbolt's check: %v", when, err)
	}
	now := time.Now()
	s, err := bolt.Open(path, store.Limits{}, bolt.Options{Now: now})
	if err != nil {
		t.Fatalf("after %s: reopening the store: %v", when, err)
	}
	defer s.Close()
	for k := range kill9Keys {
		vs := s.Get(kill9Key(k), now, nil)
		if len(vs) > 1 {
			t.Errorf("after %s: key %d holds %d values of one publisher", when, k, len(vs))
		}
		ver, ok := acked[k]
		if len(vs) == 0 {
			if ok {
				t.Errorf("after %s: key %d, acknowledged at version %#x, is gone", when, k, ver)
			}
			continue
		}
		if vs[0].Version < ver {
			t.Errorf("after %s: key %d, acknowledged at version %#x, rolled back to %#x", when, k, ver, vs[0].Version)
		}
		if !bytes.Equal(vs[0].Data, kill9Value(k, vs[0].Version)) {
			t.Errorf("after %s: key %d version %#x holds %d bytes that no writer put", when, k, vs[0].Version, len(vs[0].Data))
		}
	}
}

// checkServed gets keys through the node's API, all of them or a random
// sample of n, and checks each acknowledged value comes back at its version
// or a newer one, intact.
func checkServed(t *testing.T, c *client.Client, acked map[int]uint64, n int, r *rand.Rand, when string) {
	t.Helper()
	keys := make([]int, 0, len(acked))
	for k := range kill9Keys {
		if _, ok := acked[k]; ok {
			keys = append(keys, k)
		}
	}
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys[:min(n, len(keys))] {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := c.Get(ctx, kill9Key(k))
		cancel()
		if err != nil {
			if errors.Is(err, api.ErrNotFound) {
				t.Errorf("%s: key %d, acknowledged at version %#x, not found", when, k, acked[k])
				continue
			}
			t.Fatalf("%s: get of key %d: %v", when, k, err)
		}
		if len(res.Values) == 0 || res.Values[0].Version < acked[k] {
			t.Errorf("%s: key %d, acknowledged at version %#x, served as %+v", when, k, acked[k], res.Values)
			continue
		}
		if got := res.Values[0]; !bytes.Equal(got.Data, kill9Value(k, got.Version)) {
			t.Errorf("%s: key %d version %#x served with bytes no writer put", when, k, got.Version)
		}
	}
}
