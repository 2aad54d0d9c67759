package bolt_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
)

// records renders every record s holds under keys at now.
func records(s store.Store, keys []id.ID, now time.Time) string {
	var b strings.Builder
	for _, k := range keys {
		for _, v := range s.Records(k, now, nil) {
			fmt.Fprintf(&b, "%s %s v%d exp=%s del=%v %d\n", k.Short(), v.Publisher.Short(), v.Version,
				v.Expires.UTC().Format(time.RFC3339Nano), v.Deleted, len(v.Data))
		}
	}
	fmt.Fprintf(&b, "len=%d bytes=%d\n", s.Len(), s.Bytes())
	return b.String()
}

// Whatever remote peers write — values, replacements, refreshes, stale
// versions, tombstones, from any source, into a store whose every bound
// they reach — the store reopens with the same limits and holds what it
// held: a peer cannot make the node's store refuse to open.
func TestNoRemoteWriteSequenceMakesTheStoreRefuseToReopen(t *testing.T) {
	for seed := range uint64(16) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runReopens(t, 8800+seed) })
	}
}

func runReopens(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 88))
	l := store.Limits{MaxValueSize: 2000, MaxPerKey: 6, MaxBytesPerKey: 4000, MaxValues: 40, MaxBytes: 20000, MaxPerPublisher: 5}
	path := filepath.Join(t.TempDir(), "db")
	keys := make([]id.ID, 8)
	for i := range keys {
		keys[i] = id.Key(fmt.Sprint("key", i))
	}
	pubs := make([]id.ID, 12)
	for i := range pubs {
		pubs[i] = id.Key(fmt.Sprint("pub", i))
	}
	srcs := []netip.Addr{{}, netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"),
		netip.MustParseAddr("2001:db8:1:1::1"), netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("::ffff:198.51.100.9")}
	now := t0
	s, err := bolt.Open(path, l, bolt.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for round := range 4 {
		for range 150 {
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
			v := store.Value{Publisher: pubs[rng.IntN(len(pubs))], Version: uint64(rng.IntN(6)),
				Expires: now.Add(time.Duration(1+rng.IntN(3600)) * time.Second)}
			switch rng.IntN(4) {
			case 0:
				v.Deleted = true
			default:
				v.Data = make([]byte, rng.IntN(2200))
				for i := range v.Data {
					v.Data[i] = byte(rng.IntN(2)) // few distinct bytes: refreshes happen
				}
			}
			if s.Put(keys[rng.IntN(len(keys))], v, srcs[rng.IntN(len(srcs))], now) == nil {
				accepted++
			}
			if rng.IntN(20) == 0 {
				s.Sweep(now)
			}
		}
		s.Sweep(now)
		syncNow(t, s)
		want := records(s, keys, now)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = bolt.Open(path, l, bolt.Options{Now: now})
		if err != nil {
			t.Fatalf("round %d: the store refuses to reopen with its own limits: %v", round, err)
		}
		if got := records(s, keys, now); got != want {
			t.Fatalf("round %d: reopened with\n%s\nwant\n%s", round, got, want)
		}
	}
	if accepted < 100 {
		t.Fatalf("only %d writes accepted: the sequence does not exercise the store", accepted)
	}
	s.Close()
}

// A peer that keeps rewriting its records (refreshes of the same bytes,
// new versions of the same size) costs the file no more room over time:
// each rewrite deletes the entry it supersedes, and bbolt reuses the freed
// pages.
func TestRewritesDoNotGrowTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, store.Limits{}, bolt.Options{})
	const records = 300
	data := make([]byte, 500)
	now := t0
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	var early int64
	for round := range 60 {
		now = now.Add(time.Second)
		for i := range records {
			v := store.Value{Publisher: id.ID{byte(i), byte(i >> 8)}, Version: uint64(1 + round/2), Expires: now.Add(time.Hour), Data: data}
			put(t, s, id.Key(fmt.Sprint("k", i%50)), v, netip.MustParseAddr("203.0.113.5"))
		}
		syncNow(t, s)
		if round == 9 {
			early = size()
		}
	}
	late := size()
	t.Logf("file %d KiB after 10 rounds, %d KiB after 60", early>>10, late>>10)
	if late > early+early/2 {
		t.Errorf("60 rounds of rewriting %d records grew the file from %d to %d KiB", records, early>>10, late>>10)
	}
}
