package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, args []string, env map[string]string) *Loaded {
	t.Helper()
	l, err := LoadConfig(args, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantSource(t *testing.T, l *Loaded, name, value string, src Source, origin string) {
	t.Helper()
	e, ok := l.Effective(name)
	if !ok {
		t.Fatalf("no setting %q", name)
	}
	if e.Value != value || e.Source != src || !strings.Contains(e.Origin, origin) {
		t.Errorf("%s = %q from %s %q; want %q from %s %q", name, e.Value, e.Source, e.Origin, value, src, origin)
	}
}

// Each level of precedence beats the ones below it: flag > env > file >
// network > default, shown on k (which has all five) and on a setting that
// has no network level.
func TestSettingsPrecedenceFlagEnvFileNetworkDefault(t *testing.T) {
	dir := t.TempDir()
	nets := writeFile(t, dir, "nets.json", `{"n": {"dht-constants": {"bucket_size": 8}}}`)
	conf := writeFile(t, dir, "dht.toml", "k = 10\nlog-level = \"warn\"\nsockets = 2\n")
	base := []string{"--memory", "--network", nets + ":n"}

	l := mustLoad(t, []string{"--memory"}, nil)
	wantSource(t, l, "k", "20", SourceNetwork, "main in built-in networks.json")
	wantSource(t, l, "log-level", "info", SourceDefault, "")
	wantSource(t, l, "network", "main", SourceDefault, "")

	l = mustLoad(t, base, nil)
	wantSource(t, l, "k", "8", SourceNetwork, "n in "+nets)

	l = mustLoad(t, append(base, "--config", conf), nil)
	wantSource(t, l, "k", "10", SourceFile, conf+":1")
	wantSource(t, l, "log-level", "warn", SourceFile, conf+":2")

	env := map[string]string{"DHT_K": "12", "DHT_LOG_LEVEL": "error", "DHT_CONFIG": conf}
	l = mustLoad(t, base, env)
	wantSource(t, l, "config", conf, SourceEnv, "DHT_CONFIG")
	wantSource(t, l, "k", "12", SourceEnv, "DHT_K")
	wantSource(t, l, "log-level", "error", SourceEnv, "DHT_LOG_LEVEL")
	wantSource(t, l, "sockets", "2", SourceFile, conf+":3")

	l = mustLoad(t, append(base, "--k", "14", "--log-level=debug"), env)
	wantSource(t, l, "k", "14", SourceFlag, "--k")
	wantSource(t, l, "log-level", "debug", SourceFlag, "--log-level")
	if l.Config.Node.K != 14 || l.Config.LogLevel.String() != "DEBUG" || l.Config.Node.Sockets != 2 {
		t.Errorf("config does not carry the effective values: k %d, level %v, sockets %d", l.Config.Node.K, l.Config.LogLevel, l.Config.Node.Sockets)
	}

	// An empty variable counts as unset.
	l = mustLoad(t, base, map[string]string{"DHT_K": ""})
	wantSource(t, l, "k", "8", SourceNetwork, "")
}

// The network's constants and seeds fill the config; --seeds replaces the
// seeds, and "none" empties them.
func TestSettingsTakeTheNetworksConstantsAndSeeds(t *testing.T) {
	dir := t.TempDir()
	nets := writeFile(t, dir, "nets.json", `{"n": {
	  "dht-constants": {"network_id": 7, "bucket_size": 8, "parallel_calls": 2, "default_age": 600, "min_age": 30, "max_age": 7200, "refresh_timeout": 900, "rpc_timeout": 2},
	  "dht-seeds": [{"host": "seed.example.org", "udp_port": 4000, "maintainer": "Ann"}]}}`)
	l := mustLoad(t, []string{"--memory", "--network", nets + ":n"}, nil)
	c := l.Config
	if c.Node.NetworkID != 7 || c.Node.K != 8 || c.Node.Alpha != 2 || c.DefaultTTL != 10*time.Minute || c.MinTTL != 30*time.Second ||
		c.Node.MaxTTL != 2*time.Hour || c.Node.RefreshInterval != 15*time.Minute || c.Node.RequestTimeout != 2*time.Second {
		t.Errorf("constants not applied: %+v", c)
	}
	if len(c.Seeds) != 1 || c.Seeds[0].Addr() != "seed.example.org:4000" || c.Seeds[0].Maintainer != "Ann" {
		t.Errorf("seeds %+v", c.Seeds)
	}
	l = mustLoad(t, []string{"--memory", "--network", nets + ":n", "--seeds", "127.0.0.1:5000,[::1]:5001"}, nil)
	if len(l.Config.Seeds) != 2 || l.Config.Seeds[1].Addr() != "[::1]:5001" {
		t.Errorf("seeds override: %+v", l.Config.Seeds)
	}
	l = mustLoad(t, []string{"--memory", "--network", nets + ":n", "--seeds", "none"}, nil)
	if len(l.Config.Seeds) != 0 {
		t.Errorf("--seeds none: %+v", l.Config.Seeds)
	}
}

// --print-config's output names every setting with its source, and is a
// config file that gives the same values back.
func TestPrintConfigShowsEverySettingAndItsSourceAndRoundTrips(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "dht.toml", "max-values = 5000\nlisten = [\"127.0.0.1:4100\", \"[::1]:4100\"]\n")
	l := mustLoad(t, []string{"--config", conf, "--http", "off", "--pprof", "--data", dir}, map[string]string{"DHT_LOG_FORMAT": "json"})
	var b bytes.Buffer
	if err := l.WriteConfig(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range Settings() {
		if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(s.Name) + ` = `).MatchString(out) {
			t.Errorf("--print-config does not show %s:\n%s", s.Name, out)
		}
	}
	for _, w := range []string{
		`max-values = 5000`, "# file " + conf + ":1",
		`listen = ["127.0.0.1:4100", "[::1]:4100"]`, "# file " + conf + ":2",
		`log-format = "json"`, "# env DHT_LOG_FORMAT",
		`http = "off"`, "# flag --http",
		`pprof = true`,
		`k = 20`, "# network main in built-in networks.json",
		`max-bytes = 268435456`, "# default",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("--print-config does not say %q:\n%s", w, out)
		}
	}
	again := writeFile(t, dir, "again.toml", out)
	l2 := mustLoad(t, []string{"--config", again}, nil)
	for i, e := range l.Settings {
		e2 := l2.Settings[i]
		if e.Name == "config" {
			continue
		}
		if e2.Value != e.Value {
			t.Errorf("%s: %q after the round trip, was %q", e.Name, e2.Value, e.Value)
		}
	}
}

// A bad value from any source stops loading with one line naming the
// setting, where the value came from and what is allowed.
func TestBadSettingsNameTheSettingItsSourceAndWhatIsAllowed(t *testing.T) {
	dir := t.TempDir()
	nbad := 0
	bad := func(text string) string {
		nbad++
		return writeFile(t, dir, fmt.Sprintf("bad%d.toml", nbad), text)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"flag listen", []string{"--listen", "nonsense"}, nil, []string{`invalid listen "nonsense"`, "flag --listen", "HOST:PORT"}},
		{"flag port", []string{"--listen", "127.0.0.1:99999"}, nil, []string{"listen", "0 to 65535"}},
		{"flag k", []string{"--k", "0"}, nil, []string{`invalid k "0"`, "from flag --k", "1 to 32"}},
		{"flag alpha", []string{"--k", "20", "--alpha", "21"}, nil, []string{`invalid alpha "21"`, "at most k", "k is 20, from flag --k"}},
		{"k below network alpha", []string{"--k", "2"}, nil, []string{`invalid k "2"`, "flag --k", "alpha is 3, from network main"}},
		{"env level", nil, map[string]string{"DHT_LOG_LEVEL": "loud"}, []string{`invalid log-level "loud"`, "env DHT_LOG_LEVEL", "debug, info, warn or error"}},
		{"env format", nil, map[string]string{"DHT_LOG_FORMAT": "xml"}, []string{"log-format", "text or json"}},
		{"env bool", nil, map[string]string{"DHT_PPROF": "yes please"}, []string{"invalid pprof", "env DHT_PPROF", "true or false"}},
		{"flag bool", []string{"--pprof=maybe"}, nil, []string{"invalid pprof", "flag --pprof", "true or false"}},
		{"network id", []string{"--network-id", "-1"}, nil, []string{"network-id", "4294967295"}},
		{"id", []string{"--id", "xyz"}, nil, []string{`invalid id "xyz"`, "40 hexadecimal digits"}},
		{"duration", []string{"--request-timeout", "5"}, nil, []string{"request-timeout", "not a duration", "1ms to 1h"}},
		{"ttl order", []string{"--min-ttl", "48h"}, nil, []string{`invalid min-ttl "48h"`, "at most max-ttl", "max-ttl is 24h, from network main"}},
		{"default ttl", []string{"--default-ttl", "2s"}, nil, []string{`invalid default-ttl "2s"`, "at least min-ttl"}},
		{"value size", []string{"--max-value-size", "2000000"}, nil, []string{"max-value-size", "1 to 1048576"}},
		{"disjoint paths", []string{"--disjoint-paths", "17"}, nil, []string{`invalid disjoint-paths "17"`, "flag --disjoint-paths", "0 (one lookup) to 16"}},
		{"max bytes", []string{"--max-bytes", "10", "--max-value-size", "100"}, nil, []string{`invalid max-bytes "10"`, "at least max-value-size"}},
		{"seeds port 0", []string{"--seeds", "127.0.0.1:0"}, nil, []string{"invalid seeds", "1 to 65535"}},
		{"http", []string{"--http", "4001"}, nil, []string{"invalid http", "HOST:PORT", "or off"}},
		{"network file", []string{"--network", "/nonexistent/nets.json"}, nil, []string{"invalid network", "no such file", "FILE:NAME"}},
		{"network name", []string{"--network", "moon"}, nil, []string{`invalid network "moon"`, "it has local, main"}},
		{"network file field", []string{"--network", writeFile(t, dir, "n.json", `{"n": {"dht-constants": {"bucket_size": 99}}}`)}, nil, []string{"invalid network", "n.dht-constants.bucket_size", "from 1 to 32"}},
		{"unknown flag", []string{"--lisen", "x"}, nil, []string{"unknown flag --lisen", "did you mean --listen?"}},
		{"flag without value", []string{"--listen"}, nil, []string{"flag --listen needs a value", "HOST:PORT"}},
		{"argument", []string{"stray"}, nil, []string{`unexpected argument "stray"`}},
		{"config missing", []string{"--config", filepath.Join(dir, "none.toml")}, nil, []string{"invalid config", "no such file"}},
		{"file syntax", []string{"--config", bad("k = \n")}, nil, []string{"config file", ".toml:1"}},
		{"file unknown key", []string{"--config", bad("# c\nlisen = \"x\"\n")}, nil, []string{".toml:2", `unknown setting "lisen"`, "did you mean listen?"}},
		{"file config key", []string{"--config", bad("config = \"x\"\n")}, nil, []string{`"config" cannot be set in the config file`}},
		{"file type", []string{"--config", bad("k = \"20\"\n")}, nil, []string{"invalid k", "file", ".toml:1", "whole number (no quotes)"}},
		{"file bool type", []string{"--config", bad("memory = \"true\"\n")}, nil, []string{"invalid memory", "true or false (no quotes)"}},
		{"file duration type", []string{"--config", bad("max-ttl = 3600\n")}, nil, []string{"invalid max-ttl", `"24h"`}},
		{"file value", []string{"--config", bad("\n\nlog-level = \"loud\"\n")}, nil, []string{`invalid log-level "loud"`, "from file", ".toml:3", "debug, info"}},
		{"file table", []string{"--config", bad("[node]\nk = 3\n")}, nil, []string{".toml:1", `unknown setting "node"`}},
	}
	for _, c := range cases {
		_, err := LoadConfig(append([]string{"--memory"}, c.args...), envMap(c.env))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: error is more than one line: %q", c.name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", c.name, msg, w)
			}
		}
	}
	var se *SettingError
	if _, err := LoadConfig([]string{"--k", "0"}, nil); !errors.As(err, &se) || se.Setting != "k" || se.Source != SourceFlag {
		t.Errorf("a bad flag's error is not a *SettingError for k from a flag: %#v", err)
	}
}

// Paths in the config file are relative to the file, wherever the node is
// started from.
func TestConfigFilePathsAreRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "etc")
	os.Mkdir(sub, 0o700)
	writeFile(t, sub, "nets.json", `{"n": {}, "m": {}}`)
	conf := writeFile(t, sub, "dht.toml", "network = \"nets.json:m\"\ndata = \"state\"\n")
	l := mustLoad(t, []string{"--config", conf}, nil)
	if l.Config.Network.Name != "m" || l.Config.DataDir != filepath.Join(sub, "state") {
		t.Errorf("network %q, data %q; want m and %s", l.Config.Network.Name, l.Config.DataDir, filepath.Join(sub, "state"))
	}
	conf = writeFile(t, sub, "dht2.toml", "network = \"local\"\n")
	if l := mustLoad(t, []string{"--config", conf, "--memory"}, nil); l.Config.Network.Name != "local" {
		t.Errorf("a built-in network's name in the file became a path: %q", l.Config.Network.Name)
	}
}

// --help lists every setting with its variable; -h asks for help too.
func TestUsageListsEverySettingAndItsVariable(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--k", "3", "-help"}} {
		if l, err := LoadConfig(args, nil); err != nil || !l.Help {
			t.Errorf("%v: help %v, %v", args, l != nil && l.Help, err)
		}
	}
	var b bytes.Buffer
	Usage(&b)
	for _, s := range Settings() {
		if !strings.Contains(b.String(), "--"+s.Name) || !strings.Contains(b.String(), s.Env) {
			t.Errorf("usage does not show --%s and %s", s.Name, s.Env)
		}
	}
}

// docs/config.md documents every setting: its flag, variable and file key,
// so that the documentation cannot drift from the table.
func TestConfigDocListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range Settings() {
		row := regexp.MustCompile("(?m)^\\| `--" + regexp.QuoteMeta(s.Name) + "` \\| `" + s.Env + "` \\| (`" + regexp.QuoteMeta(s.Name) + "`|—) \\|")
		if !row.MatchString(doc) {
			t.Errorf("docs/config.md has no row | `--%s` | `%s` | `%s` | ...", s.Name, s.Env, s.Name)
		}
	}
	for _, f := range append(append(networkFields, constantsFields...), seedFields...) {
		if !strings.Contains(doc, "`"+f+"`") {
			t.Errorf("docs/config.md does not document the networks file field %q", f)
		}
	}
}

// The PutTTL helper the API uses: the default for 0, capped at the maximum,
// refused below the minimum.
func TestPutTTLDefaultsCapsAndRefuses(t *testing.T) {
	l := mustLoad(t, []string{"--memory"}, nil)
	c := l.Config
	if d, err := c.PutTTL(0); d != time.Hour || err != nil {
		t.Errorf("PutTTL(0) = %v, %v", d, err)
	}
	if d, err := c.PutTTL(48 * time.Hour); d != 24*time.Hour || err != nil {
		t.Errorf("PutTTL(48h) = %v, %v", d, err)
	}
	if _, err := c.PutTTL(time.Second); !errors.Is(err, ErrTTLTooShort) {
		t.Errorf("PutTTL(1s) = %v, want ErrTTLTooShort", err)
	}
}

// With --memory and no --data, nothing points at the data directory, so that
// Run puts api.json in the runtime directory.
func TestMemoryWithoutDataUsesTheRuntimeDir(t *testing.T) {
	if l := mustLoad(t, []string{"--memory"}, nil); l.Config.DataDir != "" {
		t.Errorf("DataDir %q", l.Config.DataDir)
	}
	if l := mustLoad(t, []string{"--memory", "--data", "/tmp/x"}, nil); l.Config.DataDir != "/tmp/x" {
		t.Errorf("DataDir %q", l.Config.DataDir)
	}
}

// contrib/dht.example.toml is a valid config file that shows every setting
// the file may hold.
func TestExampleConfigFileIsValidAndShowsEverySetting(t *testing.T) {
	const p = "../contrib/dht.example.toml"
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig([]string{"--config", p, "--memory"}, nil); err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	for _, s := range Settings() {
		if !s.InFile {
			continue
		}
		if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(s.Name) + ` = `).Match(b) {
			t.Errorf("the example does not show %s", s.Name)
		}
	}
	// Uncommenting every default-valued line still loads.
	uncommented := regexp.MustCompile(`(?m)^# ([a-z-]+ = )`).ReplaceAllString(string(b), "$1")
	seen := map[string]bool{}
	var lines []string
	for _, ln := range strings.Split(uncommented, "\n") {
		if m := regexp.MustCompile(`^([a-z-]+) = `).FindStringSubmatch(ln); m != nil {
			if seen[m[1]] || m[1] == "network" || m[1] == "data" || m[1] == "seeds" {
				continue // the first of each, and no paths or names that need a real network
			}
			seen[m[1]] = true
		}
		lines = append(lines, ln)
	}
	all := writeFile(t, t.TempDir(), "all.toml", strings.Join(lines, "\n"))
	if _, err := LoadConfig([]string{"--config", all, "--memory"}, nil); err != nil {
		t.Errorf("the example with its defaults uncommented does not load: %v", err)
	}
}

// --secret-file reads the secret into the node's config, and refuses a file
// others may read or one too short, naming the setting.
func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "secret", "0123456789abcdef0123456789abcdef\n")
	if err := os.Chmod(good, 0o600); err != nil {
		t.Fatal(err)
	}
	l := mustLoad(t, []string{"--memory", "--secret-file", good}, nil)
	if string(l.Config.Node.Secret) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("secret %q", l.Config.Node.Secret)
	}
	if l := mustLoad(t, []string{"--memory"}, nil); l.Config.Node.Secret != nil {
		t.Fatalf("no --secret-file, yet secret %q", l.Config.Node.Secret)
	}
	open := writeFile(t, dir, "open", "0123456789abcdef0123456789abcdef")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	short := writeFile(t, dir, "short", "too short\n")
	if err := os.Chmod(short, 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{open: "chmod 600", short: "at least 16", filepath.Join(dir, "missing"): "no such file"} {
		_, err := LoadConfig([]string{"--memory", "--secret-file", file}, nil)
		if err == nil || !strings.Contains(err.Error(), "secret-file") || !strings.Contains(err.Error(), want) {
			t.Errorf("--secret-file %s: %v, want an error naming secret-file and saying %q", file, err, want)
		}
	}
}

// The replication interval is a daemon setting: a flag sets the node's
// interval, the default is the core's hour, and one under a minute is
// refused.
func TestReplicateIntervalSetting(t *testing.T) {
	c, err := LoadConfig([]string{"--memory", "--replicate-interval", "10m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.Node.ReplicateInterval != 10*time.Minute {
		t.Fatalf("--replicate-interval 10m gave %v", c.Config.Node.ReplicateInterval)
	}
	if c, err = LoadConfig([]string{"--memory"}, nil); err != nil || c.Config.Node.ReplicateInterval != time.Hour {
		t.Fatalf("default: %v, %v; want 1h", c.Config.Node.ReplicateInterval, err)
	}
	if _, err := LoadConfig([]string{"--memory", "--replicate-interval", "30s"}, nil); err == nil {
		t.Fatal("--replicate-interval 30s accepted")
	}
}

// disjoint-paths reaches dht.Config.DisjointPaths; its default is one lookup.
func TestDisjointPathsSettingSetsTheNodeConfig(t *testing.T) {
	if l := mustLoad(t, []string{"--memory"}, nil); l.Config.Node.DisjointPaths != 0 {
		t.Errorf("default DisjointPaths %d, want 0", l.Config.Node.DisjointPaths)
	}
	l := mustLoad(t, []string{"--memory"}, map[string]string{"DHT_DISJOINT_PATHS": "3"})
	if l.Config.Node.DisjointPaths != 3 {
		t.Errorf("DHT_DISJOINT_PATHS=3 gave DisjointPaths %d", l.Config.Node.DisjointPaths)
	}
}

// require-tokens reaches dht.Config.RequireTokens; it is off by default.
func TestRequireTokensSetting(t *testing.T) {
	if l := mustLoad(t, []string{"--memory"}, nil); l.Config.Node.RequireTokens {
		t.Error("RequireTokens on by default")
	}
	if l := mustLoad(t, []string{"--memory", "--require-tokens"}, nil); !l.Config.Node.RequireTokens {
		t.Error("--require-tokens left RequireTokens off")
	}
	if _, err := LoadConfig([]string{"--memory"}, func(k string) string { return map[string]string{"DHT_REQUIRE_TOKENS": "maybe"}[k] }); err == nil || !strings.Contains(err.Error(), "require-tokens") {
		t.Errorf("DHT_REQUIRE_TOKENS=maybe: %v, want an error naming require-tokens", err)
	}
}
