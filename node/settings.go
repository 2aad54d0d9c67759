package node

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/sealed"
	"github.com/dhtkit/dht/wire"
)

// The daemon's settings. Each comes, in this order of precedence, from a
// flag (--listen), an environment variable (DHT_LISTEN), the config file
// (listen = ...), the chosen network's constants (for the protocol settings)
// or its default. One table below defines every setting, so that the flags,
// the environment, the file, --print-config, --help and docs/config.md
// (which a test checks against Settings) cannot disagree.

// Source says where a setting's effective value came from.
type Source string

// The sources, from the weakest to the strongest.
const (
	SourceDefault Source = "default"
	SourceNetwork Source = "network"
	SourceFile    Source = "file"
	SourceEnv     Source = "env"
	SourceFlag    Source = "flag"
)

// EnvPrefix starts every setting's environment variable.
const EnvPrefix = "DHT_"

// Setting documents one setting, as --help and docs/config.md show it.
type Setting struct {
	// Name is the flag (--Name) and the config file key.
	Name string
	// Env is the environment variable: DHT_ and the name in upper case with
	// underscores.
	Env string
	// Type is how the value is written: string, integer, boolean, duration
	// (Go syntax: 90s, 10m, 24h) or list (comma-separated in flags and the
	// environment, an array of strings or a comma-separated string in the
	// file).
	Type string
	// Default describes the default value.
	Default string
	// Allowed says what values the setting accepts.
	Allowed string
	// Help says what the setting does.
	Help string
	// FromNetwork is set for the settings whose default is the network's
	// constant.
	FromNetwork bool
	// InFile is false for the settings the config file cannot hold.
	InFile bool
}

// Effective is one setting's effective value and where it came from.
type Effective struct {
	// Name is the setting's name.
	Name string
	// Value is the value as text, as a flag would give it.
	Value string
	// Source is where the value came from.
	Source Source
	// Origin details the source: the flag (--listen), the variable
	// (DHT_LISTEN), the file and line (/etc/dht/dht.toml:3), the network
	// (main in built-in networks.json); empty for a default.
	Origin string
}

type kind int

const (
	kString kind = iota
	kInt
	kBool
	kDuration
	kList
)

var kindNames = map[kind]string{kString: "string", kInt: "integer", kBool: "boolean", kDuration: "duration", kList: "list"}

type settingDef struct {
	name    string
	kind    kind
	arg     string // the flag's argument in --help
	help    string
	allowed string
	// def returns the default value as text, given the settings before it
	// in the table (which are applied already).
	def     func(c *DaemonConfig) string
	defDoc  string // the default for --help and docs, when def's text would mislead
	fromNet func(nw Network) string
	noFile  bool
	path    bool // a file path: relative paths in the config file are relative to it
	apply   func(c *DaemonConfig, v string) error
}

func (s *settingDef) env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func constDef(v string) func(*DaemonConfig) string { return func(*DaemonConfig) string { return v } }

const (
	defaultListen = "0.0.0.0:4000"
	defaultHTTP   = "127.0.0.1:4001"
	maxDuration   = 10 * 365 * 24 * time.Hour
)

// settings is the table; its order is the order of --help, --print-config
// and docs/config.md, and the order values are applied in (a setting's
// default may depend on the ones before it).
var settings = []*settingDef{
	{
		name: "config", kind: kString, arg: "FILE", noFile: true, path: true,
		help:    "read settings from this TOML file (flags and environment variables win over it)",
		allowed: "the path of a TOML file of `name = value` lines (see docs/config.md), or empty for none",
		def:     constDef(""), defDoc: "none",
		apply: func(c *DaemonConfig, v string) error { return nil },
	},
	{
		name: "network", kind: kString, arg: "FILE[:NAME]", path: true,
		help:    "the network to join: a networks file and the network's name in it, or the name of a built-in network (main, local)",
		allowed: "FILE (a path with a / or ending in .json), FILE:NAME, or NAME of a built-in network (main or local)",
		def:     constDef(DefaultNetworkName),
		apply:   func(c *DaemonConfig, v string) error { return nil }, // loaded before the others
	},
	{
		name: "seeds", kind: kList, arg: "HOST:PORT,...",
		help:    "nodes to join through, instead of the network's seeds; none starts a new network",
		allowed: "comma-separated HOST:PORT (a DNS name or an IP, port 1 to 65535), or none",
		fromNet: func(nw Network) string { return strings.Join(nw.SeedAddrs(), ",") },
		apply: func(c *DaemonConfig, v string) error {
			seeds, err := parseSeeds(v)
			c.Seeds = seeds
			return err
		},
	},
	{
		name: "listen", kind: kList, arg: "HOST:PORT,...",
		help:    "UDP addresses to listen on; add an IPv6 one (e.g. [::]:4000) for dual stack",
		allowed: "comma-separated HOST:PORT, port 0 to 65535 (0 picks a free one)",
		def:     constDef(defaultListen),
		apply: func(c *DaemonConfig, v string) error {
			l, err := parseHostPorts(v, 0)
			if err == nil && len(l) == 0 {
				err = errors.New("no address")
			}
			c.Node.Listen = l
			return err
		},
	},
	{
		name: "sockets", kind: kInt, arg: "N",
		help:    "sockets per listen address (SO_REUSEPORT), to spread load over cores",
		allowed: "a whole number from 1 to 64",
		def:     constDef("1"),
		apply:   func(c *DaemonConfig, v string) (err error) { c.Node.Sockets, err = parseInt(v, 1, 64); return },
	},
	{
		name: "data", kind: kString, arg: "DIR", path: true,
		help:    "the data directory: node.key, contacts.json, api.token, api.json, values.db",
		allowed: "a directory path (made with mode 0700 if missing)",
		def: func(*DaemonConfig) string {
			d, _ := DefaultDataDir()
			return d
		},
		defDoc: "$XDG_DATA_HOME/dht, or ~/.local/share/dht",
		apply: func(c *DaemonConfig, v string) error {
			c.DataDir = v
			return nil
		},
	},
	{
		name: "memory", kind: kBool,
		help:    "keep nothing on disk: a new ID each run, no saved contacts, values in memory (api.json still goes to --data if given, else $XDG_RUNTIME_DIR/dht)",
		allowed: "true or false",
		def:     constDef("false"),
		apply:   func(c *DaemonConfig, v string) (err error) { c.Memory, err = parseBool(v); return },
	},
	{
		name: "http", kind: kString, arg: "HOST:PORT",
		help:    "the HTTP API's address; a non-loopback address makes every request need the token",
		allowed: "HOST:PORT (port 0 picks a free one), or off",
		def:     constDef(defaultHTTP),
		apply: func(c *DaemonConfig, v string) error {
			if v == "off" || v == "" {
				c.HTTP = ""
				return nil
			}
			l, err := parseHostPorts(v, 0)
			if err == nil && len(l) != 1 {
				err = errors.New("one address only")
			}
			if err == nil {
				c.HTTP = l[0]
			}
			return err
		},
	},
	{
		name: "pprof", kind: kBool,
		help:    "serve Go's profiler at /debug/pprof/ on the HTTP API's address",
		allowed: "true or false",
		def:     constDef("false"),
		apply:   func(c *DaemonConfig, v string) (err error) { c.PProf, err = parseBool(v); return },
	},
	{
		name: "log-level", kind: kString, arg: "LEVEL",
		help:    "the least important log messages shown",
		allowed: "debug, info, warn or error",
		def:     constDef("info"),
		apply: func(c *DaemonConfig, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(v))
			}
			return errors.New("unknown level")
		},
	},
	{
		name: "log-format", kind: kString, arg: "FORMAT",
		help:    "how log messages are written to standard error",
		allowed: "text or json",
		def:     constDef("text"),
		apply: func(c *DaemonConfig, v string) error {
			if v != "text" && v != "json" {
				return errors.New("unknown format")
			}
			c.LogFormat = v
			return nil
		},
	},
	{
		name: "id", kind: kString, arg: "HEX",
		help:    "a fixed node ID, instead of the one kept in node.key (which is left as it is)",
		allowed: "40 hexadecimal digits, or empty for node.key's (a new random one with --memory)",
		def:     constDef(""), defDoc: "the ID in node.key, made at first start",
		apply: func(c *DaemonConfig, v string) error {
			if v == "" {
				return nil
			}
			id, err := dht.ParseID(v)
			c.Node.ID = id
			return err
		},
	},
	{
		name: "network-id", kind: kInt, arg: "N",
		help:    "the network number in every datagram: nodes drop other networks' datagrams",
		allowed: "a whole number from 0 to 4294967295 (decimal or 0x hex)",
		fromNet: func(nw Network) string { return strconv.FormatUint(uint64(nw.Constants.NetworkID), 10) },
		apply: func(c *DaemonConfig, v string) error {
			n, err := strconv.ParseUint(v, 0, 32)
			c.Node.NetworkID = uint32(n)
			return err
		},
	},
	{
		name: "secret-file", kind: kString, arg: "FILE", path: true,
		help:    "make the network private: a file holding the secret every member shares (datagrams are then encrypted and authenticated, and others' dropped)",
		allowed: fmt.Sprintf("the path of a file only its owner can read (mode 0600 or 0400) holding at least %d bytes (a trailing newline is not part of the secret), or empty for an open network", sealed.MinSecret),
		def:     constDef(""), defDoc: "none (an open network)",
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.Secret, err = ReadSecretFile(v)
			return err
		},
	},
	{
		name: "require-identity", kind: kBool,
		help:    "admit to the routing table, and count as answers, only nodes that proved their ID is their key's (every member of the network needs it)",
		allowed: "true or false",
		def:     constDef("false"),
		apply:   func(c *DaemonConfig, v string) (err error) { c.Node.RequireIdentity, err = parseBool(v); return },
	},
	{
		name: "require-tokens", kind: kBool,
		help:    "take a write or a subscription only with a token this node handed to its source address in the last 10 to 20 minutes, so that forged source addresses cannot write (every member of the network needs it)",
		allowed: "true or false",
		def:     constDef("false"),
		apply:   func(c *DaemonConfig, v string) (err error) { c.Node.RequireTokens, err = parseBool(v); return },
	},
	{
		name: "identity-difficulty", kind: kInt, arg: "BITS",
		help:    "the network's proof of work on node IDs: SHA-1 of an ID must start with this many zero bits (a new key takes about 2^BITS tries)",
		allowed: fmt.Sprintf("a whole number from 0 to %d", ident.MaxDifficulty),
		def:     constDef("0"),
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.Difficulty, err = parseInt(v, 0, ident.MaxDifficulty)
			return
		},
	},
	{
		name: "k", kind: kInt, arg: "N",
		help:    "bucket size and replication factor",
		allowed: fmt.Sprintf("a whole number from 1 to %d", wire.MaxContacts),
		fromNet: func(nw Network) string { return strconv.Itoa(nw.Constants.K) },
		apply:   func(c *DaemonConfig, v string) (err error) { c.Node.K, err = parseInt(v, 1, wire.MaxContacts); return },
	},
	{
		name: "alpha", kind: kInt, arg: "N",
		help:    "requests a lookup keeps in flight",
		allowed: "a whole number from 1 to k",
		fromNet: func(nw Network) string { return strconv.Itoa(nw.Constants.Alpha) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.Alpha, err = parseInt(v, 1, wire.MaxContacts)
			return
		},
	},
	{
		name: "request-timeout", kind: kDuration, arg: "DURATION",
		help:    "the longest one attempt of a request waits for its answer (attempts to contacts that answer faster wait less, down to 100ms), and the least a request waits before it fails",
		allowed: "a duration from 1ms to 1h",
		fromNet: func(nw Network) string { return fmtDuration(nw.Constants.RequestTimeout) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.RequestTimeout, err = parseDuration(v, time.Millisecond, time.Hour)
			return
		},
	},
	{
		name: "refresh-interval", kind: kDuration, arg: "DURATION",
		help:    "how long a bucket may go without a lookup before it is refreshed",
		allowed: "a duration of at least 1s",
		fromNet: func(nw Network) string { return fmtDuration(nw.Constants.RefreshInterval) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.RefreshInterval, err = parseDuration(v, time.Second, maxDuration)
			return
		},
	},
	{
		name: "replicate-interval", kind: kDuration, arg: "DURATION",
		help:    "how often this node copies the values it holds to their keys' current closest nodes (offering digests first)",
		allowed: "a duration from 1m to 10 years",
		def:     constDef("1h"),
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.ReplicateInterval, err = parseDuration(v, time.Minute, maxDuration)
			return
		},
	},
	{
		name: "min-ttl", kind: kDuration, arg: "DURATION",
		help:    "the shortest TTL a put through this node's API may ask for, and the least this node grants a stored value",
		allowed: "a duration of at least 1s, at most max-ttl",
		fromNet: func(nw Network) string { return fmtDuration(nw.Constants.MinTTL) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.MinTTL, err = parseDuration(v, time.Second, maxDuration)
			c.Node.MinTTL = c.MinTTL // the least this node grants others, too
			return
		},
	},
	{
		name: "default-ttl", kind: kDuration, arg: "DURATION",
		help:    "the TTL of a put through this node's API that names none",
		allowed: "a duration from min-ttl to max-ttl",
		fromNet: func(nw Network) string { return fmtDuration(nw.Constants.DefaultTTL) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.DefaultTTL, err = parseDuration(v, time.Second, maxDuration)
			return
		},
	},
	{
		name: "max-ttl", kind: kDuration, arg: "DURATION",
		help:    "the longest this node keeps a value for others (and caps its API's puts at)",
		allowed: "a duration of at least 1s",
		fromNet: func(nw Network) string { return fmtDuration(nw.Constants.MaxTTL) },
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.MaxTTL, err = parseDuration(v, time.Second, maxDuration)
			return
		},
	},
	{
		name: "max-value-size", kind: kInt, arg: "BYTES",
		help:    "the largest value this node stores for others",
		allowed: fmt.Sprintf("a whole number of bytes from 1 to %d (the most a record carries)", wire.MaxRecordSize),
		def:     constDef(strconv.Itoa(store.DefaultMaxValueSize)),
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.StoreLimits.MaxValueSize, err = parseInt(v, 1, wire.MaxRecordSize)
			return
		},
	},
	{
		name: "max-values", kind: kInt, arg: "N",
		help:    "the most values this node stores for others",
		allowed: "a whole number of at least 1",
		def:     constDef(strconv.Itoa(store.DefaultMaxValues)),
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.StoreLimits.MaxValues, err = parseInt(v, 1, math.MaxInt32)
			return
		},
	},
	{
		name: "max-bytes", kind: kInt, arg: "BYTES",
		help:    "the most bytes of values this node stores for others",
		allowed: "a whole number of bytes, at least max-value-size",
		def: func(c *DaemonConfig) string {
			return strconv.Itoa(min(store.DefaultMaxBytes, c.Node.StoreLimits.MaxValues*c.Node.StoreLimits.MaxValueSize))
		},
		defDoc: "the smaller of 256 MiB and max-values × max-value-size",
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.StoreLimits.MaxBytes, err = parseInt(v, 1, math.MaxInt)
			return
		},
	},
	{
		name: "rate-limit", kind: kInt, arg: "N",
		help:    "requests per second one source host (an IPv4 address, an IPv6 /64) may have answered; the rest are dropped and counted (loopback sources are exempt)",
		allowed: "a whole number from 0 (no limit) to 1000000000",
		def:     constDef(strconv.Itoa(int(dht.DefaultConfig().RateLimit))),
		apply: func(c *DaemonConfig, v string) error {
			n, err := parseInt(v, 0, 1e9)
			c.Node.RateLimit = float64(n)
			if n == 0 {
				c.Node.RateLimit = -1
			}
			return err
		},
	},
	{
		name: "rate-burst", kind: kInt, arg: "N",
		help:    "requests one source may send at once beyond rate-limit's pace",
		allowed: "a whole number from 1 to 1000000000",
		def: func(c *DaemonConfig) string {
			return strconv.Itoa(max(int(2*c.Node.RateLimit), 1))
		},
		defDoc: "twice rate-limit",
		apply:  func(c *DaemonConfig, v string) (err error) { c.Node.RateBurst, err = parseInt(v, 1, 1e9); return },
	},
	{
		name: "diversity-per-bucket", kind: kInt, arg: "N",
		help:    "routing-table contacts of one /24 (IPv4) or /48 (IPv6) per bucket, replacements included (global unicast addresses only)",
		allowed: "a whole number from 0 (no cap) to 256, at most diversity-per-table",
		def:     constDef(strconv.Itoa(routing.DefaultPerBucket)),
		apply: func(c *DaemonConfig, v string) error {
			n, err := parseInt(v, 0, routing.MaxK)
			c.Node.Diversity.PerBucket = capOrOff(n)
			return err
		},
	},
	{
		name: "diversity-per-table", kind: kInt, arg: "N",
		help:    "routing-table contacts of one /24 (IPv4) or /48 (IPv6) in all, replacements included (global unicast addresses only)",
		allowed: "a whole number from 0 (no cap) to 1000000",
		def:     constDef(strconv.Itoa(routing.DefaultPerTable)),
		apply: func(c *DaemonConfig, v string) error {
			n, err := parseInt(v, 0, 1e6)
			c.Node.Diversity.PerTable = capOrOff(n)
			return err
		},
	},
	{
		name: "disjoint-paths", kind: kInt, arg: "N",
		help:    "value lookups over disjoint sets of nodes that each get runs (S/Kademlia), so that lying nodes must sit on every path to decide a value; each costs about one more get's requests",
		allowed: fmt.Sprintf("a whole number from 0 (one lookup) to %d", lookup.MaxPaths),
		def:     constDef("0"),
		apply: func(c *DaemonConfig, v string) (err error) {
			c.Node.DisjointPaths, err = parseInt(v, 0, lookup.MaxPaths)
			return
		},
	},
}

// capOrOff maps a setting's 0 (no cap) to the negative that turns a
// routing.Diversity cap off (its 0 selects the default).
func capOrOff(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// Settings returns every setting of dht node, in the order --help lists them.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		d := s.defDoc
		switch {
		case d != "":
		case s.fromNet != nil:
			d = "the network's"
		default:
			d = s.def(&DaemonConfig{})
			if d == "" {
				d = "empty"
			}
		}
		out[i] = Setting{Name: s.name, Env: s.env(), Type: kindNames[s.kind], Default: d, Allowed: s.allowed, Help: s.help, FromNetwork: s.fromNet != nil, InFile: !s.noFile}
	}
	return out
}

func lookupSetting(name string) *settingDef {
	for _, s := range settings {
		if s.name == name {
			return s
		}
	}
	return nil
}

// SettingError is a setting with a value that is not allowed. Its text is one
// line naming the setting, where its value came from and what is allowed.
type SettingError struct {
	// Setting is the setting's name.
	Setting string
	// Value is the value given.
	Value string
	// Source and Origin say where the value came from.
	Source Source
	Origin string
	// Problem says what is wrong, and Allowed what the setting accepts.
	Problem, Allowed string
}

func (e *SettingError) Error() string {
	from := string(e.Source)
	if e.Origin != "" {
		from += " " + e.Origin
	}
	msg := fmt.Sprintf("invalid %s %q (from %s)", e.Setting, e.Value, from)
	if e.Problem != "" {
		msg += ": " + e.Problem
	}
	if e.Allowed != "" {
		msg += "; allowed: " + e.Allowed
	}
	return oneLine(msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Loaded is the outcome of LoadConfig.
type Loaded struct {
	// Config is the daemon's configuration.
	Config DaemonConfig
	// Settings lists every setting's effective value, in Settings order.
	Settings []Effective
	// Networks is the networks file the network came from.
	Networks *Networks
	// Help is set when --help (or -h) was given: the rest is then empty.
	Help bool
	// PrintConfig is set when --print-config was given.
	PrintConfig bool
}

// raw is a setting's value before it is checked.
type raw struct {
	v      string
	src    Source
	origin string
}

// LoadConfig reads dht node's settings from args (the flags after "node"),
// the environment (getenv; an empty variable counts as unset) and the config
// file, and checks them. Its errors are one line: a *SettingError for a bad
// value, or a message naming the flag, variable or file key at fault.
func LoadConfig(args []string, getenv func(string) string) (*Loaded, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	vals := map[string]raw{}
	flags := flag.NewFlagSet("dht node", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	for _, s := range settings {
		flags.Var(&flagValue{s: s, vals: vals}, s.name, s.help)
	}
	printConfig := flags.Bool("print-config", false, "print every effective setting and where it came from, then exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &Loaded{Help: true}, nil
		}
		return nil, flagError(err)
	}
	if flags.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: dht node takes flags only", flags.Arg(0))
	}
	for _, s := range settings {
		if _, ok := vals[s.name]; ok {
			continue
		}
		if v := getenv(s.env()); v != "" {
			vals[s.name] = raw{v: v, src: SourceEnv, origin: s.env()}
		}
	}
	if c, ok := vals["config"]; ok && c.v != "" {
		fileVals, err := readConfigFile(c.v, c)
		if err != nil {
			return nil, err
		}
		for name, r := range fileVals {
			if _, ok := vals[name]; !ok {
				vals[name] = r
			}
		}
	}

	l := &Loaded{PrintConfig: *printConfig}
	// The network first: its constants are the defaults of the protocol
	// settings.
	nr, ok := vals["network"]
	if !ok {
		nr = raw{v: DefaultNetworkName, src: SourceDefault}
	}
	nw, ns, err := LoadNetwork(nr.v)
	if err != nil {
		se := &SettingError{Setting: "network", Value: nr.v, Source: nr.src, Origin: nr.origin, Problem: strings.TrimPrefix(err.Error(), "networks file ")}
		if errors.Is(err, fs.ErrNotExist) {
			se.Allowed = lookupSetting("network").allowed // perhaps a name was meant
		}
		return nil, se
	}
	l.Networks = ns
	c := &l.Config
	c.Network = nw
	c.Node = dht.DefaultConfig()
	netOrigin := fmt.Sprintf("%s in %s", nw.Name, ns.Source)
	for _, s := range settings {
		r, ok := vals[s.name]
		switch {
		case ok:
		case s.fromNet != nil:
			r = raw{v: s.fromNet(nw), src: SourceNetwork, origin: netOrigin}
		default:
			r = raw{v: s.def(c), src: SourceDefault}
		}
		if err := s.apply(c, r.v); err != nil {
			return nil, &SettingError{Setting: s.name, Value: r.v, Source: r.src, Origin: r.origin, Problem: problem(err), Allowed: s.allowed}
		}
		l.Settings = append(l.Settings, Effective{Name: s.name, Value: r.v, Source: r.src, Origin: r.origin})
	}
	if err := l.crossCheck(); err != nil {
		return nil, err
	}
	if c.Memory && l.effective("data").Source == SourceDefault {
		c.DataDir = "" // Run puts api.json in RuntimeDir
	}
	// Seeds in the effective config carry the maintainers the network file
	// names, when they are the network's.
	if r := l.effective("seeds"); r.Source == SourceNetwork {
		c.Seeds = append([]Seed(nil), nw.Seeds...)
	}
	return l, nil
}

func oneLineErr(err error) error { return errors.New(oneLine(err.Error())) }

// strength orders the sources by precedence.
var strength = map[Source]int{SourceDefault: 0, SourceNetwork: 1, SourceFile: 2, SourceEnv: 3, SourceFlag: 4}

// crossCheck checks the settings that bound each other. The error blames the
// setting the user gave over one that came from the network or a default,
// since that is the one to change.
func (l *Loaded) crossCheck() error {
	c := &l.Config
	conflict := func(a, b, problem string) error {
		ea, eb := l.effective(a), l.effective(b)
		blame, other := ea, eb
		if strength[eb.Source] > strength[ea.Source] {
			blame, other = eb, ea
		}
		from := string(other.Source)
		if other.Origin != "" {
			from += " " + other.Origin
		}
		return &SettingError{Setting: blame.Name, Value: blame.Value, Source: blame.Source, Origin: blame.Origin,
			Problem: fmt.Sprintf("%s (%s is %s, from %s)", problem, other.Name, other.Value, from), Allowed: lookupSetting(blame.Name).allowed}
	}
	switch {
	case c.Node.Alpha > c.Node.K:
		return conflict("alpha", "k", "alpha must be at most k")
	case c.MinTTL > c.Node.MaxTTL:
		return conflict("min-ttl", "max-ttl", "min-ttl must be at most max-ttl")
	case c.DefaultTTL < c.MinTTL:
		return conflict("default-ttl", "min-ttl", "default-ttl must be at least min-ttl")
	case c.DefaultTTL > c.Node.MaxTTL:
		return conflict("default-ttl", "max-ttl", "default-ttl must be at most max-ttl")
	case c.Node.StoreLimits.MaxBytes < c.Node.StoreLimits.MaxValueSize:
		return conflict("max-bytes", "max-value-size", "max-bytes must be at least max-value-size")
	case !c.Memory && c.DataDir == "":
		e := l.effective("data")
		_, err := DefaultDataDir()
		if err == nil {
			err = errors.New("empty")
		}
		return &SettingError{Setting: "data", Value: e.Value, Source: e.Source, Origin: e.Origin, Problem: err.Error(), Allowed: lookupSetting("data").allowed + ", or --memory"}
	}
	return nil
}

// problem turns a parse error into the reason shown after the value.
func problem(err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		if errors.Is(ne.Err, strconv.ErrRange) {
			return "out of range"
		}
		return "not a number"
	}
	return err.Error()
}

func (l *Loaded) effective(name string) Effective {
	for _, e := range l.Settings {
		if e.Name == name {
			return e
		}
	}
	return Effective{}
}

// Effective returns the named setting's effective value and source.
func (l *Loaded) Effective(name string) (Effective, bool) {
	e := l.effective(name)
	return e, e.Name != ""
}

// WriteConfig writes every effective setting as a config file would hold it,
// each followed by a comment saying where it came from: the output of
// --print-config, which is itself a valid config file.
func (l *Loaded) WriteConfig(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# dht node: effective settings; network %q from %s\n", l.Config.Network.Name, l.Networks.Source)
	lines := make([][2]string, len(l.Settings))
	width := 0
	for i, e := range l.Settings {
		s := lookupSetting(e.Name)
		kv := fmt.Sprintf("%s = %s", e.Name, tomlValue(s.kind, e.Value))
		if s.noFile {
			kv = "# " + kv
		}
		from := string(e.Source)
		if e.Origin != "" {
			from += " " + e.Origin
		}
		lines[i] = [2]string{kv, from}
		width = max(width, len(kv))
	}
	for _, ln := range lines {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, ln[0], ln[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tomlValue writes a setting's text value in TOML syntax.
func tomlValue(k kind, v string) string {
	switch k {
	case kInt, kBool:
		if v != "" {
			return v
		}
	case kList:
		var parts []string
		for _, p := range splitList(v) {
			parts = append(parts, strconv.Quote(p))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return strconv.Quote(v)
}

// Usage writes dht node's help: every setting with its flag, variable and
// default.
func Usage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`Usage: dht node [flags]

Run a node in the foreground until SIGINT or SIGTERM.

Every setting is a flag (--name VALUE), an environment variable (DHT_NAME) and
a key of the --config file (name = value); a flag wins over the environment,
which wins over the file, which wins over the network's constants and the
defaults. --print-config shows what is in effect and why; docs/config.md
explains each setting.

Flags:
`)
	for _, s := range Settings() {
		d := lookupSetting(s.Name)
		name := "--" + s.Name
		if d.arg != "" {
			name += " " + d.arg
		}
		fmt.Fprintf(&b, "  %-26s (env %s; default %s)\n        %s\n", name, s.Env, s.Default, upperFirst(s.Help))
	}
	b.WriteString("  --print-config\n        Print every effective setting and where it came from, then exit\n")
	io.WriteString(w, b.String())
}

// fmtDuration writes a duration the short way people write it: 1h, not
// 1h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// flagValue records a flag's raw text; values are checked once every source
// is known, so that a flag's error reads like any other source's.
type flagValue struct {
	s    *settingDef
	vals map[string]raw
}

func (f *flagValue) String() string { return "" }

func (f *flagValue) Set(v string) error {
	f.vals[f.s.name] = raw{v: v, src: SourceFlag, origin: "--" + f.s.name}
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.s.kind == kBool }

// flagError rewrites the flag package's errors into one line that names the
// flag, with a guess at the one meant for an unknown flag.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = fmt.Sprintf("unknown flag --%s", name)
		if g := guess(name); g != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", g)
		}
		return errors.New(msg)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		if s := lookupSetting(name); s != nil {
			return fmt.Errorf("flag --%s needs a value: %s", name, s.allowed)
		}
	}
	return oneLineErr(err)
}

// guess returns the setting whose name is closest to name, if close enough
// to be what was meant.
func guess(name string) string {
	best, bestD := "", 3
	for _, s := range settings {
		if d := editDistance(name, s.name); d < bestD {
			best, bestD = s.name, d
		}
	}
	if d := editDistance(name, "print-config"); d < bestD {
		best = "print-config"
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// maxConfigFile bounds the config file; a real one is a few hundred bytes.
const maxConfigFile = 1 << 20

// readConfigFile reads the TOML config file: flat `name = value` lines, one
// per setting. Each value is turned into the text a flag would give, so that
// every source is checked by the same code; relative paths are taken
// relative to the file's directory.
func readConfigFile(path string, from raw) (map[string]raw, error) {
	b, err := readSmall(path, maxConfigFile)
	if err != nil {
		return nil, &SettingError{Setting: "config", Value: path, Source: from.src, Origin: from.origin, Problem: unwrapPathError(err).Error(), Allowed: lookupSetting("config").allowed}
	}
	text := string(b)
	var m map[string]any
	if _, err := toml.Decode(text, &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config file %s:%d: %s", path, pe.Position.Line, oneLine(pe.Message))
		}
		return nil, fmt.Errorf("config file %s: %s", path, oneLine(err.Error()))
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := map[string]raw{}
	for _, k := range names {
		origin := path
		if n := keyLine(text, k); n > 0 {
			origin = fmt.Sprintf("%s:%d", path, n)
		}
		s := lookupSetting(k)
		if s == nil || s.noFile {
			msg := fmt.Sprintf("config file %s: unknown setting %q", origin, k)
			if s != nil {
				msg = fmt.Sprintf("config file %s: %q cannot be set in the config file (use --%s or %s)", origin, k, k, s.env())
			} else if g := guess(k); g != "" && g != "print-config" {
				msg += fmt.Sprintf(" (did you mean %s?)", g)
			}
			return nil, errors.New(msg)
		}
		v, err := fileValue(s.kind, m[k])
		if err != nil {
			return nil, &SettingError{Setting: k, Value: fmt.Sprint(m[k]), Source: SourceFile, Origin: origin, Problem: err.Error(), Allowed: s.allowed}
		}
		if s.path && v != "" {
			v = relTo(filepath.Dir(path), s.name, v)
		}
		out[k] = raw{v: v, src: SourceFile, origin: origin}
	}
	return out, nil
}

// relTo resolves a relative path given in the config file against the file's
// directory; a network given by its built-in name is no path.
func relTo(dir, name, v string) string {
	if name == "network" {
		file, net := splitNetworkSpec(v)
		if file == "" || filepath.IsAbs(file) {
			return v
		}
		if net != "" {
			return filepath.Join(dir, file) + ":" + net
		}
		return filepath.Join(dir, file)
	}
	if filepath.IsAbs(v) {
		return v
	}
	return filepath.Join(dir, v)
}

// keyLine finds the line of a top-level key, for messages; 0 if not found.
func keyLine(text, key string) int {
	for i, ln := range strings.Split(text, "\n") {
		ln = strings.TrimSpace(ln)
		if strings.HasPrefix(ln, "["+key+"]") || strings.HasPrefix(ln, "["+key+".") || strings.HasPrefix(ln, "[["+key+"]]") {
			return i + 1
		}
		for _, k := range []string{key, strconv.Quote(key), "'" + key + "'"} {
			if rest, ok := strings.CutPrefix(ln, k); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
				return i + 1
			}
		}
	}
	return 0
}

// fileValue converts a decoded TOML value into a setting's text.
func fileValue(k kind, v any) (string, error) {
	switch k {
	case kString, kDuration:
		if s, ok := v.(string); ok {
			return s, nil
		}
		if k == kDuration {
			return "", errors.New("must be a string such as \"90s\" or \"24h\"")
		}
		return "", errors.New("must be a string")
	case kInt:
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 10), nil
		}
		return "", errors.New("must be a whole number (no quotes)")
	case kBool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return "", errors.New("must be true or false (no quotes)")
	case kList:
		switch l := v.(type) {
		case string:
			return l, nil
		case []any:
			parts := make([]string, len(l))
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					return "", errors.New("must be an array of strings or a comma-separated string")
				}
				parts[i] = s
			}
			if len(parts) == 0 {
				return "none", nil
			}
			return strings.Join(parts, ","), nil
		}
		return "", errors.New("must be an array of strings or a comma-separated string")
	}
	return "", errors.New("unsupported value")
}

// --- value parsers; their errors say what is wrong with the value ---

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errors.New("not a whole number")
	}
	if n < lo || n > hi {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("not true or false")
	}
	return b, nil
}

func parseDuration(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("not a duration (write e.g. 500ms, 90s, 10m or 24h)")
	}
	if d < lo || d > hi {
		return 0, errors.New("out of range")
	}
	return d, nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseHostPorts parses a comma-separated list of HOST:PORT with ports of
// at least minPort.
func parseHostPorts(v string, minPort int) ([]string, error) {
	var out []string
	for _, a := range splitList(v) {
		host, port, err := net.SplitHostPort(a)
		if err != nil || (strings.Contains(host, ":") && !strings.HasPrefix(a, "[")) {
			return nil, fmt.Errorf("%q is not HOST:PORT", a)
		}
		if host == "" {
			return nil, fmt.Errorf("%q has no host (0.0.0.0 is every IPv4 interface, [::] every IPv6 one)", a)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port || int(p) < minPort {
			return nil, fmt.Errorf("%q: port must be a number from %d to 65535", a, minPort)
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil {
			if err := checkSeedHost(host); err != nil {
				return nil, fmt.Errorf("%q: host is neither an IP address nor a DNS name", a)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// parseSeeds parses the seeds setting.
func parseSeeds(v string) ([]Seed, error) {
	if strings.TrimSpace(v) == "none" {
		return nil, nil
	}
	l, err := parseHostPorts(v, 1)
	if err != nil {
		return nil, err
	}
	if len(l) > maxSeeds {
		return nil, fmt.Errorf("%d seeds: at most %d", len(l), maxSeeds)
	}
	out := make([]Seed, len(l))
	for i, a := range l {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.ParseUint(port, 10, 16)
		out[i] = Seed{Host: host, UDPPort: uint16(p)}
	}
	return out, nil
}

// NewLogger makes the daemon's logger: text or JSON lines on w, from level
// up. Unknown formats fall back to text.
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ReadSecretFile reads a private network's secret from path: the file's
// bytes, less one trailing newline ("\n" or "\r\n"), at least
// sealed.MinSecret of them. It refuses a file that its group or others
// may read, since whoever reads it can read and write the network. An
// empty path is no secret (an open network).
func ReadSecretFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s may be read by its group or others (mode %04o): anyone who reads the secret can read and write the network; run chmod 600 %s", path, perm, path)
	}
	// A secret is short: refuse to read a large file whole.
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return nil, err
	}
	if len(b) > 4096 {
		return nil, fmt.Errorf("%s has over 4096 bytes: is it the secret?", path)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < sealed.MinSecret {
		return nil, fmt.Errorf("%s holds %d bytes: a secret needs at least %d (32 random bytes are best, e.g. head -c 32 /dev/urandom | base64 > %s)", path, len(b), sealed.MinSecret, path)
	}
	return b, nil
}
