package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// nowhere is an address no endpoint listens at: requests to it go unanswered.
var nowhere = netip.MustParseAddrPort("127.9.9.9:4000")

// validConfig is a Config that Validate accepts, for tests to spoil.
func validConfig(t *testing.T) Config {
	t.Helper()
	net := memnet.New(memnet.Config{Clock: clock.NewVirtual(epoch)})
	return Config{Transport: net.NewEndpoint()}
}

func TestValidateNamesTheFieldAndWhatIsAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"negative attempts", func(c *Config) { c.Attempts = -1 }, "Attempts = -1: must be at least 1"},
		{"negative keep-alives", func(c *Config) { c.MaxKeepAlives = -1 }, "MaxKeepAlives = -1: must be at least 0"},
		{"path cache over a reply", func(c *Config) { c.PathCache = 65 }, "PathCache = 65: must be at most 64"},
		{"beta over K", func(c *Config) { c.PutBeta = 21 }, "PutBeta = 21: must be at most K (20)"},
		{"no failures allowed", func(c *Config) { c.MaxFailures = -1 }, "MaxFailures = -1: must be between 1 and 255"},
		{"too many failures", func(c *Config) { c.MaxFailures = 256 }, "MaxFailures = 256: must be between 1 and 255"},
		{"negative replacement cache", func(c *Config) { c.ReplacementCache = -1 }, "ReplacementCache = -1: must be at least 0"},
		{"stall after the timeout", func(c *Config) { c.StallAfter = 2 * time.Second }, "StallAfter = 2s: must be between 0 and RequestTimeout (1s)"},
		{"negative stall", func(c *Config) { c.StallAfter = -time.Second }, "StallAfter = -1s"},
		{"unspecified seed", func(c *Config) { c.Seeds = []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:4000")} }, "Seeds[0] = 0.0.0.0:4000: not an address"},
		{"seed without port", func(c *Config) {
			c.Seeds = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:0")}
		}, "Seeds[1] = 127.0.0.1:0"},
		{"store limits with a store", func(c *Config) {
			c.Store = store.NewMemory(store.Limits{})
			c.StoreLimits = store.Limits{MaxPerKey: 2}
		}, "StoreLimits applies to the default store only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Zero means the default, and the default is spelled out: two sends per
// request (one retry); Attempts 1 means no retry at all, with no negative
// value needed for it.
func TestZeroAttemptsMeansTwoSendsAndOneMeansNoRetry(t *testing.T) {
	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Attempts != 2 {
		t.Fatalf("zero Attempts gave Attempts %d; want 2", c.Attempts)
	}
	// A validated Config validates again unchanged (Node.Config feeds New).
	again := c
	if err := again.Validate(); err != nil || again.Attempts != 2 {
		t.Fatalf("revalidating: %v, Attempts %d", err, again.Attempts)
	}

	tn := newTestNet(t, 31, memnet.Config{})
	a := tn.add(func(c *Config) { c.Attempts = 1 })
	pending := 1
	a.Ping(nowhere, func(_ id.Contact, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	if st := a.Stats(); st.Requests != 1 || st.Retries != 0 || st.Timeouts != 1 {
		t.Fatalf("Attempts 1: %d requests, %d retries, %d timeouts; want 1, 0, 1", st.Requests, st.Retries, st.Timeouts)
	}
}

func TestStoreLimitsBoundTheDefaultStore(t *testing.T) {
	c := validConfig(t)
	c.StoreLimits = store.Limits{MaxPerKey: 2, MaxValueSize: 10}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m, ok := c.Store.(*store.Memory)
	if !ok {
		t.Fatalf("default store is %T", c.Store)
	}
	if l := m.Limits(); l.MaxPerKey != 2 || l.MaxValueSize != 10 {
		t.Fatalf("default store limits %+v, want MaxPerKey 2, MaxValueSize 10", l)
	}
}

func TestValidateKeepsItsOwnCopyOfTheSeeds(t *testing.T) {
	c := validConfig(t)
	seeds := []netip.AddrPort{netip.MustParseAddrPort("[::ffff:127.0.0.1]:4000")}
	c.Seeds = seeds
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	seeds[0] = netip.MustParseAddrPort("127.0.0.2:1")
	if want := netip.MustParseAddrPort("127.0.0.1:4000"); len(c.Seeds) != 1 || c.Seeds[0] != want {
		t.Fatalf("Seeds = %v, want [%v] (unmapped, not aliasing the caller's slice)", c.Seeds, want)
	}
}

// chachaOf is what the node's stream should be for a given seed.
func chachaOf(seed [32]byte) *rand.Rand { return rand.New(rand.NewChaCha8(seed)) }

func sameStream(t *testing.T, got, want *rand.Rand) {
	t.Helper()
	for i := range 64 {
		if g, w := got.Uint64(), want.Uint64(); g != w {
			t.Fatalf("output %d: %#x, want %#x from ChaCha8", i, g, w)
		}
	}
}

// Without Config.Rand, the node's stream (IDs, jitter, transaction IDs) is
// ChaCha8 keyed with 32 bytes from crypto/rand: peers who see its outputs
// cannot compute the next one, as they could with a PCG.
func TestDefaultRandomSourceIsChaCha8SeededFromCryptoRand(t *testing.T) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i*7 + 1)
	}
	old := seedSource
	seedSource = bytes.NewReader(seed[:])
	t.Cleanup(func() { seedSource = old })

	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := chachaOf(seed)
	if wantID := id.Random(want); c.ID != wantID {
		t.Fatalf("ID %v, want %v: the first draw of the ChaCha8 stream", c.ID, wantID)
	}
	sameStream(t, c.Rand, want)

	seedSource = bytes.NewReader(nil)
	c = validConfig(t)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "seeding the random source") {
		t.Fatalf("Validate with no randomness available = %v, want a seeding error", err)
	}
}

// A given Config.Rand keys the ChaCha8 stream with its first four outputs,
// so the simulator's runs stay reproducible from its seed.
func TestGivenRandKeysTheChaCha8Stream(t *testing.T) {
	c := validConfig(t)
	c.Rand = rand.New(rand.NewPCG(1, 2))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var seed [32]byte
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], r.Uint64())
	}
	want := chachaOf(seed)
	id.Random(want) // the ID comes first
	sameStream(t, c.Rand, want)
}

// txidsOf pings a silent endpoint from a node seeded with seed and returns
// the transaction IDs the endpoint saw.
func txidsOf(t *testing.T, seed uint64) []uint64 {
	tn := newTestNet(t, seed, memnet.Config{})
	var got []uint64
	sink := tn.net.NewEndpoint()
	var m wire.Message
	if err := sink.Start(transport.HandlerFunc(func(data []byte, _ netip.AddrPort, _ transport.Writer) {
		if wire.Decode(data, &m) == nil {
			got = append(got, m.TxID)
		}
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	a := tn.add(func(c *Config) { c.Attempts = 1 })
	pending := 5
	for range 5 {
		a.Ping(sink.LocalAddr(), func(id.Contact, error) { pending-- })
	}
	tn.await(&pending, time.Minute)
	return got
}

func TestSameSeedSameTransactionIDs(t *testing.T) {
	a, b, c := txidsOf(t, 41), txidsOf(t, 41), txidsOf(t, 42)
	if len(a) != 5 {
		t.Fatalf("saw %d requests, want 5", len(a))
	}
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different transaction IDs: %x and %x", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 41 and 42 gave the same transaction IDs %x", a)
	}
}
