package dht

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
)

func TestValidateNamesTheFieldAndWhatIsAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"negative attempts", func(c *Config) { c.Attempts = -1 }, "Config.Attempts is -1: must be between 1 (no retry) and 10"},
		{"too many attempts", func(c *Config) { c.Attempts = 11 }, "Config.Attempts is 11"},
		{"negative stall", func(c *Config) { c.StallAfter = -time.Millisecond }, "Config.StallAfter is -1ms: must be between 0 and RequestTimeout (1s)"},
		{"stall after the timeout", func(c *Config) { c.RequestTimeout = 200 * time.Millisecond; c.StallAfter = 300 * time.Millisecond },
			"Config.StallAfter is 300ms: must be between 0 and RequestTimeout (200ms)"},
		{"negative failures", func(c *Config) { c.MaxFailures = -1 }, "Config.MaxFailures is -1: must be between 1 and 255"},
		{"too many failures", func(c *Config) { c.MaxFailures = 256 }, "Config.MaxFailures is 256"},
		{"negative store values", func(c *Config) { c.StoreLimits.MaxValues = -1 }, "Config.StoreLimits.MaxValues is -1: must be at least 0"},
		{"negative per key", func(c *Config) { c.StoreLimits.MaxPerKey = -2 }, "Config.StoreLimits.MaxPerKey is -2: must be at least 0"},
		{"negative source quota", func(c *Config) { c.StoreLimits.MaxPerSource = -1 }, "a bound is negative"},
		{"negative site quota", func(c *Config) { c.StoreLimits.MaxPerKeyPerSite = -1 }, "a bound is negative"},
		{"value larger than a record", func(c *Config) { c.StoreLimits.MaxValueSize = 1<<20 + 1 }, "Config.StoreLimits.MaxValueSize is 1048577: must be between 0"},
		{"negative per-key byte quota", func(c *Config) { c.StoreLimits.MaxBytesPerKeyPerSource = -1 }, "a bound is negative"},
		{"limits with a store", func(c *Config) {
			c.Store = store.NewMemory(store.Limits{})
			c.StoreLimits.MaxPerKey = 4
		}, "Config.StoreLimits is set along with Config.Store"},
		{"seed without port", func(c *Config) { c.Seeds = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")} }, "Config.Seeds[0] is 192.0.2.1:0"},
		{"unspecified seed", func(c *Config) {
			c.Seeds = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("[::]:4000")}
		}, "Config.Seeds[1] is [::]:4000"},
		{"invalid seed", func(c *Config) { c.Seeds = []netip.AddrPort{{}} }, "Config.Seeds[0] is invalid"},
		{"lookup shorter than a request", func(c *Config) { c.LookupTimeout = 500 * time.Millisecond }, "Config.LookupTimeout is 500ms: must be at least RequestTimeout (1s)"},
		{"negative quorum", func(c *Config) { c.GetQuorum = -1 }, "Config.GetQuorum is -1: must be between 1 and K (20)"},
		{"quorum over K", func(c *Config) { c.K = 4; c.GetQuorum = 5 }, "Config.GetQuorum is 5: must be between 1 and K (4)"},
		{"negative keep-alives", func(c *Config) { c.MaxKeepAlives = -1 }, "Config.MaxKeepAlives is -1: must be at least 0"},
		{"beta over K", func(c *Config) { c.PutBeta = 21 }, "Config.PutBeta is 21: must be between 1 and K (20), 0 for the default 3, or -1"},
		{"beta below -1", func(c *Config) { c.PutBeta = -2 }, "Config.PutBeta is -2"},
		{"path cache too big", func(c *Config) { c.PathCache = 65 }, "Config.PathCache is 65: must be between 1 and 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A zero field means its default, and the zero value of each new field is
// spelled out: two sends per request, stalls at half the timeout, three
// failures drop a contact. Attempts 1 means no retry, with no negative value
// needed for it.
func TestZeroFieldsMeanTheDefaults(t *testing.T) {
	var zero Config
	if err := zero.validate(); err != nil {
		t.Fatal(err)
	}
	if zero.LookupTimeout != 30*time.Second || zero.GetQuorum != 3 || zero.AnyScope {
		t.Fatalf("zero Config validated to LookupTimeout %v, GetQuorum %d, AnyScope %v", zero.LookupTimeout, zero.GetQuorum, zero.AnyScope)
	}
	if zero.Attempts != 2 || zero.StallAfter != 500*time.Millisecond || zero.MaxFailures != 3 {
		t.Fatalf("zero Config validated to Attempts %d, StallAfter %v, MaxFailures %d; want 2, 500ms, 3",
			zero.Attempts, zero.StallAfter, zero.MaxFailures)
	}
	d := DefaultConfig()
	if d.Attempts != 2 || d.MaxFailures != 3 || d.StallAfter != 0 {
		t.Fatalf("DefaultConfig: Attempts %d, MaxFailures %d, StallAfter %v; want 2, 3, 0 (half of RequestTimeout)",
			d.Attempts, d.MaxFailures, d.StallAfter)
	}
	// StallAfter follows a changed timeout rather than outliving it.
	d.RequestTimeout = 200 * time.Millisecond
	if err := d.validate(); err != nil || d.StallAfter != 100*time.Millisecond {
		t.Fatalf("RequestTimeout 200ms: %v, StallAfter %v, want 100ms", err, d.StallAfter)
	}
	one := DefaultConfig()
	one.Attempts = 1
	if err := one.validate(); err != nil || one.Attempts != 1 {
		t.Fatalf("Attempts 1: %v, Attempts now %d", err, one.Attempts)
	}
}

// Every new field reaches the node New starts.
func TestNewPassesTheConfigToTheNode(t *testing.T) {
	net := memnet.New(memnet.Config{Clock: clock.NewVirtual(time.Unix(0, 0))})
	seed := netip.MustParseAddrPort("127.9.9.9:4000")
	cfg := DefaultConfig()
	cfg.Transport = net.NewEndpoint()
	cfg.Clock = clock.NewVirtual(time.Unix(0, 0))
	cfg.Attempts = 1
	cfg.StallAfter = 300 * time.Millisecond
	cfg.MaxFailures = 7
	cfg.StoreLimits = store.Limits{MaxPerKey: 3}
	cfg.Seeds = []netip.AddrPort{seed}
	cfg.LookupTimeout = 7 * time.Second
	cfg.GetQuorum = 1
	cfg.AnyScope = true
	cfg.RequireTokens = true
	cfg.RecordPolicy.RefusePlain = true
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := n.c.Config()
	if c.Attempts != 1 || c.StallAfter != 300*time.Millisecond || c.MaxFailures != 7 || len(c.Seeds) != 1 || c.Seeds[0] != seed {
		t.Fatalf("node config: Attempts %d, StallAfter %v, MaxFailures %d, Seeds %v", c.Attempts, c.StallAfter, c.MaxFailures, c.Seeds)
	}
	if !c.RecordPolicy.RefusePlain || !c.RequireTokens {
		t.Fatal("node config: RecordPolicy or RequireTokens not passed on")
	}
	if c.LookupTimeout != 7*time.Second || c.GetQuorum != 1 || !c.AnyScope {
		t.Fatalf("node config: LookupTimeout %v, GetQuorum %d, AnyScope %v", c.LookupTimeout, c.GetQuorum, c.AnyScope)
	}
	if l := c.Store.(*store.Memory).Limits(); l.MaxPerKey != 3 {
		t.Fatalf("default store limits %+v, want MaxPerKey 3", l)
	}
	cfg.Transport, cfg.MaxKeepAlives, cfg.PutBeta, cfg.PathCache = net.NewEndpoint(), 5, -1, -1
	n2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if c := n2.c.Config(); c.MaxKeepAlives != 5 || c.PutBeta != -1 || c.PathCache != -1 || c.KeepAliveEnded == nil {
		t.Fatalf("node config: MaxKeepAlives %d, PutBeta %d, PathCache %d", c.MaxKeepAlives, c.PutBeta, c.PathCache)
	}
}
