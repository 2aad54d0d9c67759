package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht"
)

// The embedded file parses, its default network is "main", whose seeds are
// the documented placeholders under .invalid (a name that never resolves),
// and "local" seeds on loopback.
func TestBuiltinNetworksFileHasPlaceholderMainAndLoopbackLocal(t *testing.T) {
	ns := BuiltinNetworksFile()
	if got := ns.Names(); strings.Join(got, ",") != "local,main" {
		t.Fatalf("networks %v, want local and main", got)
	}
	main, err := ns.Network("")
	if err != nil || main.Name != "main" {
		t.Fatalf("default network %q, %v; want main", main.Name, err)
	}
	if !strings.Contains(main.Description, "NO PUBLIC NETWORK YET") || len(main.Seeds) == 0 {
		t.Errorf("main must say it is a placeholder and list placeholder seeds: %+v", main)
	}
	for _, s := range main.Seeds {
		if !strings.HasSuffix(s.Host, ".invalid") {
			t.Errorf("main seed %q is not a placeholder under .invalid", s.Host)
		}
	}
	local, err := ns.Network("local")
	if err != nil || len(local.Seeds) == 0 {
		t.Fatalf("local: %+v, %v", local, err)
	}
	for _, s := range local.Seeds {
		if s.Host != "127.0.0.1" {
			t.Errorf("local seed %q is not on loopback", s.Host)
		}
	}
	if d := DefaultConstants(); main.Constants != d {
		t.Errorf("main's constants %+v differ from the library defaults %+v", main.Constants, d)
	}
}

// A file in BitDust's shape (dht-constants in seconds, dht-seeds with host,
// udp_port and maintainer) parses, and the constants land in dht.Config.
func TestNetworksFileInBitDustShapeMapsOntoConfig(t *testing.T) {
	const file = `{
	  "lab": {
	    "description": "our lab network",
	    "maintainer": "ops@example.org",
	    "dht-constants": {
	      "network_id": 4242, "bucket_size": 8, "parallel_calls": 4,
	      "default_age": 43200, "min_age": 300, "max_age": 86400,
	      "refresh_timeout": 600, "rpc_timeout": 0.5
	    },
	    "dht-seeds": [
	      {"host": "seed.example.org", "udp_port": 14441, "maintainer": "Ann"},
	      {"host": "2001:db8::7", "udp_port": 14441}
	    ]
	  }
	}`
	ns, err := ParseNetworks("lab.json", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	nw, err := ns.Network("") // the only network is the default
	if err != nil {
		t.Fatal(err)
	}
	want := Constants{NetworkID: 4242, K: 8, Alpha: 4, DefaultTTL: 12 * time.Hour, MinTTL: 5 * time.Minute, MaxTTL: 24 * time.Hour,
		RefreshInterval: 10 * time.Minute, RequestTimeout: 500 * time.Millisecond}
	if nw.Constants != want {
		t.Errorf("constants %+v, want %+v", nw.Constants, want)
	}
	if got := strings.Join(nw.SeedAddrs(), ","); got != "seed.example.org:14441,[2001:db8::7]:14441" {
		t.Errorf("seed addresses %s", got)
	}
	if nw.Seeds[0].Maintainer != "Ann" || nw.Description != "our lab network" || nw.Maintainer != "ops@example.org" {
		t.Errorf("informational fields lost: %+v", nw)
	}
	cfg := dht.DefaultConfig()
	nw.Constants.Apply(&cfg)
	if cfg.NetworkID != 4242 || cfg.K != 8 || cfg.Alpha != 4 || cfg.MaxTTL != 24*time.Hour || cfg.RefreshInterval != 10*time.Minute || cfg.RequestTimeout != 500*time.Millisecond {
		t.Errorf("Apply: %+v", cfg)
	}
	if _, err := dht.New(func() dht.Config { cfg.Listen = []string{"127.0.0.1:0"}; return cfg }()); err != nil {
		t.Errorf("dht.New refuses the network's constants: %v", err)
	}
}

// Every bad field is refused with an error naming the file, the field's path
// and what it allows.
func TestNetworksFileErrorsNameTheFieldAndWhatIsAllowed(t *testing.T) {
	wrap := func(constants, seeds string) string {
		return `{"n": {"dht-constants": {` + constants + `}, "dht-seeds": [` + seeds + `]}}`
	}
	cases := []struct {
		name, file string
		want       []string
	}{
		{"not json", `{`, []string{"f.json", "JSON object"}},
		{"empty", `{}`, []string{"no network"}},
		{"bad name", `{"a b": {}}`, []string{`"a b"`, "letters, digits"}},
		{"unknown field", `{"n": {"seeds": []}}`, []string{"n:", `unknown field "seeds"`, "dht-seeds"}},
		{"label type", `{"n": {"label": 3}}`, []string{"n.label", "must be a string"}},
		{"constants not object", `{"n": {"dht-constants": 3}}`, []string{"n.dht-constants", "JSON object"}},
		{"unknown constant", wrap(`"bucketsize": 8`, ``), []string{"n.dht-constants", `unknown field "bucketsize"`, "bucket_size"}},
		{"k zero", wrap(`"bucket_size": 0`, ``), []string{"n.dht-constants.bucket_size", "from 1 to 32"}},
		{"k big", wrap(`"bucket_size": 33`, ``), []string{"n.dht-constants.bucket_size", "from 1 to 32"}},
		{"k fraction", wrap(`"bucket_size": 2.5`, ``), []string{"n.dht-constants.bucket_size", "whole number"}},
		{"alpha above k", wrap(`"bucket_size": 4, "parallel_calls": 5`, ``), []string{"n.dht-constants.parallel_calls", "at most bucket_size"}},
		{"network id", wrap(`"network_id": -1`, ``), []string{"n.dht-constants.network_id", "0 to 4294967295"}},
		{"age string", wrap(`"max_age": "1d"`, ``), []string{"n.dht-constants.max_age", "whole number of seconds"}},
		{"age zero", wrap(`"default_age": 0`, ``), []string{"n.dht-constants.default_age", "whole number of seconds from 1"}},
		{"rpc timeout", wrap(`"rpc_timeout": 0`, ``), []string{"n.dht-constants.rpc_timeout", "from 0.001 to 3600"}},
		{"refresh", wrap(`"refresh_timeout": 1.5`, ``), []string{"n.dht-constants.refresh_timeout", "whole number of seconds"}},
		{"min above max", wrap(`"min_age": 100, "max_age": 50, "default_age": 60`, ``), []string{"n.dht-constants", "min_age", "max_age"}},
		{"default above max", wrap(`"min_age": 10, "max_age": 50, "default_age": 60`, ``), []string{"n.dht-constants", "default_age", "between min_age"}},
		{"seeds not list", `{"n": {"dht-seeds": {}}}`, []string{"n.dht-seeds", "list of seeds"}},
		{"seed unknown field", wrap(``, `{"host": "a", "udp_port": 1, "port": 2}`), []string{"n.dht-seeds[0]", `unknown field "port"`, "udp_port"}},
		{"seed no host", wrap(``, `{"udp_port": 1}`), []string{"n.dht-seeds[0]", `"host" is missing`}},
		{"seed no port", wrap(``, `{"host": "a"}`), []string{"n.dht-seeds[0]", `"udp_port" is missing`}},
		{"seed host with port", wrap(``, `{"host": "a.example:4000", "udp_port": 1}`), []string{"n.dht-seeds[0].host", "without a port"}},
		{"seed host bracketed", wrap(``, `{"host": "[::1]", "udp_port": 1}`), []string{"n.dht-seeds[0].host", "DNS name or an IP address"}},
		{"seed host empty", wrap(``, `{"host": "", "udp_port": 1}`), []string{"n.dht-seeds[0].host"}},
		{"seed port zero", wrap(``, `{"host": "a", "udp_port": 0}`), []string{"n.dht-seeds[0].udp_port", "from 1 to 65535"}},
		{"seed port big", wrap(``, `{"host": "a", "udp_port": 70000}`), []string{"n.dht-seeds[0].udp_port", "from 1 to 65535"}},
		{"second seed", wrap(``, `{"host": "a", "udp_port": 1}, {"host": "b", "udp_port": "x"}`), []string{"n.dht-seeds[1].udp_port"}},
		{"trailing data", `{"n": {}} {}`, []string{"data after the JSON value"}},
	}
	for _, c := range cases {
		_, err := ParseNetworks("f.json", []byte(c.file))
		if err == nil {
			t.Errorf("%s: accepted %s", c.name, c.file)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "networks file f.json: ") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q does not start by naming the file on one line", c.name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", c.name, msg, w)
			}
		}
	}
}

// FILE, FILE:NAME and NAME pick as --network documents; a missing name
// lists the names there are.
func TestLoadNetworkPicksFileAndName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nets.json")
	os.WriteFile(p, []byte(`{"a": {"dht-constants": {"network_id": 1}}, "b": {"dht-constants": {"network_id": 2}}}`), 0o600)
	for _, c := range []struct {
		spec    string
		want    string
		wantErr string
	}{
		{"", "main", ""},
		{"local", "local", ""},
		{":local", "local", ""},
		{p + ":b", "b", ""},
		{p, "", "no \"main\" network and more than one other: name one as FILE:NAME, one of a, b"},
		{p + ":c", "", "has no network \"c\": it has a, b"},
		{"nosuch", "", "has no network \"nosuch\": it has local, main"},
		{filepath.Join(dir, "missing.json"), "", "no such file"},
	} {
		nw, _, err := LoadNetwork(c.spec)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.spec, err, c.wantErr)
			}
			continue
		}
		if err != nil || nw.Name != c.want {
			t.Errorf("%q: network %q, %v; want %q", c.spec, nw.Name, err, c.want)
		}
	}
	for spec, want := range map[string][2]string{
		"main":               {"", "main"},
		"nets.json":          {"nets.json", ""},
		"./nets":             {"./nets", ""},
		"nets.json:b":        {"nets.json", "b"},
		`C:\net\nets.json`:   {`C:\net\nets.json`, ""},
		`C:\net\nets.json:b`: {`C:\net\nets.json`, "b"},
	} {
		if f, n := splitNetworkSpec(spec); f != want[0] || n != want[1] {
			t.Errorf("splitNetworkSpec(%q) = %q, %q; want %q, %q", spec, f, n, want[0], want[1])
		}
	}
}
