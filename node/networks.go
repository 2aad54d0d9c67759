package node

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/wire"
)

// A networks file describes the networks a node can join, in the shape that
// peer-to-peer programs already publish for their users: a JSON object whose
// keys name the networks, each with its protocol constants ("dht-constants",
// durations in seconds) and its seed nodes ("dht-seeds"). docs/config.md
// describes every field; node/networks.json is the file the binary embeds.

// DefaultNetworkName is the network a file's users get when they name none:
// "main" when the file has it, otherwise the file's only network.
const DefaultNetworkName = "main"

// BuiltinNetworks is the name the embedded networks file goes by in messages
// and in --print-config.
const BuiltinNetworks = "built-in networks.json"

//go:embed networks.json
var builtinNetworks []byte

// BuiltinNetworksJSON returns the embedded networks file, for users who want
// a copy to edit (dht node --network FILE then reads theirs).
func BuiltinNetworksJSON() []byte { return slices.Clone(builtinNetworks) }

// Networks is a parsed networks file: its networks by name.
type Networks struct {
	// Source names the file in messages: its path, or BuiltinNetworks.
	Source string
	// Networks maps each network's name to its description.
	Networks map[string]Network
}

// Network is one network of a networks file, its fields checked.
type Network struct {
	// Name is the network's key in the file.
	Name string
	// Label is a short title for dashboards; Description says what the
	// network is for; Maintainer says who runs it; Repository is where its
	// networks file is kept. All four are informational.
	Label, Description, Maintainer, Repository string
	// Constants are the network's protocol constants.
	Constants Constants
	// Seeds are the nodes a newcomer joins through.
	Seeds []Seed
}

// Constants are the protocol constants every node of a network should share.
type Constants struct {
	// NetworkID separates this network's datagrams from other networks'.
	NetworkID uint32
	// K is the bucket size and replication factor ("bucket_size").
	K int
	// Alpha is the number of requests a lookup keeps in flight
	// ("parallel_calls").
	Alpha int
	// DefaultTTL is how long a value is kept when its publisher names no
	// time ("default_age"); MinTTL and MaxTTL bound what publishers may ask
	// for ("min_age", "max_age").
	DefaultTTL, MinTTL, MaxTTL time.Duration
	// RefreshInterval is how long a bucket may go without a lookup before it
	// is refreshed ("refresh_timeout").
	RefreshInterval time.Duration
	// RequestTimeout is how long a request waits for its answer
	// ("rpc_timeout").
	RequestTimeout time.Duration
}

// Seed is one seed node of a network.
type Seed struct {
	// Host is a DNS name or an IP address; names are resolved at every join
	// attempt, so that a seed that moves is found again.
	Host string
	// UDPPort is the seed's UDP port.
	UDPPort uint16
	// Maintainer says who runs the seed, so that users know whom to tell when
	// it is down.
	Maintainer string
}

// Addr returns the seed's address as "host:port" ("[v6]:port" for IPv6).
func (s Seed) Addr() string { return net.JoinHostPort(s.Host, fmt.Sprint(s.UDPPort)) }

// The ranges the networks file allows; docs/config.md lists them.
const (
	minAgeSeconds   = 1
	maxAgeSeconds   = 10 * 365 * 24 * 3600 // ten years: beyond it a typo, not a choice
	maxNetworks     = 256
	maxSeeds        = 64 // the core keeps no more for rejoining
	maxNetworksFile = 1 << 20
)

// Every field the file may hold, by level: an unknown field is refused, since
// a misspelt constant would otherwise be silently replaced by a default.
var (
	networkFields   = []string{"label", "description", "maintainer", "repository", "dht-constants", "dht-seeds"}
	constantsFields = []string{"network_id", "bucket_size", "parallel_calls", "default_age", "min_age", "max_age", "refresh_timeout", "rpc_timeout"}
	seedFields      = []string{"host", "udp_port", "maintainer"}
)

// DefaultConstants are the constants a network takes for the fields its file
// leaves out: the library's defaults, and a default value age of one hour.
func DefaultConstants() Constants {
	d := dht.DefaultConfig()
	return Constants{
		NetworkID:       d.NetworkID,
		K:               d.K,
		Alpha:           d.Alpha,
		DefaultTTL:      time.Hour,
		MinTTL:          time.Minute,
		MaxTTL:          d.MaxTTL,
		RefreshInterval: d.RefreshInterval,
		RequestTimeout:  d.RequestTimeout,
	}
}

// BuiltinNetworksFile returns the networks of the embedded file.
func BuiltinNetworksFile() *Networks {
	ns, err := ParseNetworks(BuiltinNetworks, builtinNetworks)
	if err != nil {
		panic("node: the embedded networks.json is invalid: " + err.Error()) // a test keeps it valid
	}
	return ns
}

// ReadNetworks reads and parses the networks file at path.
func ReadNetworks(path string) (*Networks, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("networks file %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxNetworksFile+1)); err != nil {
		return nil, fmt.Errorf("networks file %s: %w", path, err)
	}
	if buf.Len() > maxNetworksFile {
		return nil, fmt.Errorf("networks file %s: larger than %d bytes", path, maxNetworksFile)
	}
	return ParseNetworks(path, buf.Bytes())
}

// ParseNetworks parses a networks file; source names it in errors. Each
// error names the file, the field (as network.field.subfield, seeds by index)
// and what the field allows.
func ParseNetworks(source string, data []byte) (*Networks, error) {
	fail := func(field, format string, args ...any) error {
		if field == "" {
			return fmt.Errorf("networks file %s: %s", source, fmt.Sprintf(format, args...))
		}
		return fmt.Errorf("networks file %s: %s: %s", source, field, fmt.Sprintf(format, args...))
	}
	var top map[string]json.RawMessage
	if err := strictJSON(data, &top); err != nil {
		return nil, fail("", "%v (want a JSON object whose keys name networks)", err)
	}
	if len(top) == 0 {
		return nil, fail("", "no network: want a JSON object whose keys name networks")
	}
	if len(top) > maxNetworks {
		return nil, fail("", "%d networks: at most %d", len(top), maxNetworks)
	}
	out := &Networks{Source: source, Networks: make(map[string]Network, len(top))}
	for name, raw := range top {
		if !validName(name) {
			return nil, fail(fmt.Sprintf("%q", name), "a network's name must be 1 to 64 letters, digits, '.', '_' or '-'")
		}
		nw, err := parseNetwork(name, raw, fail)
		if err != nil {
			return nil, err
		}
		out.Networks[name] = nw
	}
	return out, nil
}

type failFunc func(field, format string, args ...any) error

func parseNetwork(name string, raw json.RawMessage, fail failFunc) (Network, error) {
	nw := Network{Name: name, Constants: DefaultConstants()}
	obj, err := fields(raw, networkFields)
	if err != nil {
		return nw, fail(name, "%v", err)
	}
	for k, v := range obj {
		var err error
		switch k {
		case "label":
			nw.Label, err = jsonString(v)
		case "description":
			nw.Description, err = jsonString(v)
		case "maintainer":
			nw.Maintainer, err = jsonString(v)
		case "repository":
			if string(v) != "null" {
				nw.Repository, err = jsonString(v)
			}
		}
		if err != nil {
			return nw, fail(name+"."+k, "%v", err)
		}
	}
	if raw, ok := obj["dht-constants"]; ok {
		if nw.Constants, err = parseConstants(name+".dht-constants", raw, fail); err != nil {
			return nw, err
		}
	}
	if raw, ok := obj["dht-seeds"]; ok {
		var list []json.RawMessage
		if err := strictJSON(raw, &list); err != nil {
			return nw, fail(name+".dht-seeds", "must be a list of seeds, each {\"host\": ..., \"udp_port\": ..., \"maintainer\": ...}")
		}
		if len(list) > maxSeeds {
			return nw, fail(name+".dht-seeds", "%d seeds: at most %d", len(list), maxSeeds)
		}
		for i, raw := range list {
			s, err := parseSeed(fmt.Sprintf("%s.dht-seeds[%d]", name, i), raw, fail)
			if err != nil {
				return nw, err
			}
			nw.Seeds = append(nw.Seeds, s)
		}
	}
	return nw, nil
}

func parseConstants(at string, raw json.RawMessage, fail failFunc) (Constants, error) {
	c := DefaultConstants()
	obj, err := fields(raw, constantsFields)
	if err != nil {
		return c, fail(at, "%v", err)
	}
	for _, k := range constantsFields { // in a fixed order, so that the first error is always the same
		v, ok := obj[k]
		if !ok {
			continue
		}
		field := at + "." + k
		switch k {
		case "network_id":
			n, err := jsonInt(v, 0, math.MaxUint32)
			if err != nil {
				return c, fail(field, "%v", err)
			}
			c.NetworkID = uint32(n)
		case "bucket_size":
			n, err := jsonInt(v, 1, wire.MaxContacts)
			if err != nil {
				return c, fail(field, "%v", err)
			}
			c.K = int(n)
		case "parallel_calls":
			n, err := jsonInt(v, 1, wire.MaxContacts)
			if err != nil {
				return c, fail(field, "%v", err)
			}
			c.Alpha = int(n)
		default:
			d, err := jsonSeconds(v, k == "rpc_timeout")
			if err != nil {
				return c, fail(field, "%v", err)
			}
			switch k {
			case "default_age":
				c.DefaultTTL = d
			case "min_age":
				c.MinTTL = d
			case "max_age":
				c.MaxTTL = d
			case "refresh_timeout":
				c.RefreshInterval = d
			case "rpc_timeout":
				c.RequestTimeout = d
			}
		}
	}
	if c.Alpha > c.K {
		return c, fail(at+".parallel_calls", "%d: must be at most bucket_size (%d)", c.Alpha, c.K)
	}
	if err := checkTTLs(c.MinTTL, c.DefaultTTL, c.MaxTTL); err != nil {
		return c, fail(at, "%s", strings.NewReplacer("min-ttl", "min_age", "default-ttl", "default_age", "max-ttl", "max_age").Replace(err.Error()))
	}
	return c, nil
}

// checkTTLs checks min <= default <= max, naming the settings.
func checkTTLs(minTTL, def, maxTTL time.Duration) error {
	switch {
	case minTTL > maxTTL:
		return fmt.Errorf("min-ttl (%v) is above max-ttl (%v): the shortest allowed TTL must not exceed the longest", minTTL, maxTTL)
	case def < minTTL || def > maxTTL:
		return fmt.Errorf("default-ttl (%v) must be between min-ttl (%v) and max-ttl (%v)", def, minTTL, maxTTL)
	}
	return nil
}

func parseSeed(at string, raw json.RawMessage, fail failFunc) (Seed, error) {
	var s Seed
	obj, err := fields(raw, seedFields)
	if err != nil {
		return s, fail(at, "%v", err)
	}
	for _, k := range []string{"host", "udp_port"} {
		if _, ok := obj[k]; !ok {
			return s, fail(at, "field %q is missing: a seed needs a host and a udp_port", k)
		}
	}
	if s.Host, err = jsonString(obj["host"]); err == nil {
		err = checkSeedHost(s.Host)
	}
	if err != nil {
		return s, fail(at+".host", "%v", err)
	}
	p, err := jsonInt(obj["udp_port"], 1, 65535)
	if err != nil {
		return s, fail(at+".udp_port", "%v", err)
	}
	s.UDPPort = uint16(p)
	if v, ok := obj["maintainer"]; ok {
		if s.Maintainer, err = jsonString(v); err != nil {
			return s, fail(at+".maintainer", "%v", err)
		}
	}
	return s, nil
}

// checkSeedHost accepts a DNS name or an IP address (IPv6 without brackets),
// with no port: the port has a field of its own.
func checkSeedHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	const want = "must be a DNS name or an IP address, without a port (e.g. seed1.example.org, 203.0.113.7 or 2001:db8::7)"
	if h == "" || len(h) > 253 || strings.HasPrefix(h, "[") {
		return fmt.Errorf("%q %s", h, want)
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q %s", h, want)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q %s", h, want)
			}
		}
	}
	return nil
}

// Network returns the network named name, or the file's default network when
// name is empty (see DefaultNetworkName). The error lists the names there are.
func (ns *Networks) Network(name string) (Network, error) {
	if name == "" {
		if nw, ok := ns.Networks[DefaultNetworkName]; ok {
			return nw, nil
		}
		if len(ns.Networks) == 1 {
			for _, nw := range ns.Networks {
				return nw, nil
			}
		}
		return Network{}, fmt.Errorf("networks file %s has no %q network and more than one other: name one as FILE:NAME, one of %s", ns.Source, DefaultNetworkName, strings.Join(ns.Names(), ", "))
	}
	nw, ok := ns.Networks[name]
	if !ok {
		return Network{}, fmt.Errorf("networks file %s has no network %q: it has %s", ns.Source, name, strings.Join(ns.Names(), ", "))
	}
	return nw, nil
}

// Names returns the file's network names, sorted.
func (ns *Networks) Names() []string {
	names := make([]string, 0, len(ns.Networks))
	for n := range ns.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadNetwork picks a network as --network does: spec is FILE, FILE:NAME or
// the NAME of a network of the built-in file (an empty spec picks the built-in
// file's default network). A spec names a file when it contains a path
// separator or ends in .json (write ./networks for a file named networks), so
// that what a spec means never depends on the working directory.
func LoadNetwork(spec string) (Network, *Networks, error) {
	file, name := splitNetworkSpec(spec)
	var ns *Networks
	if file == "" {
		ns = BuiltinNetworksFile()
	} else {
		var err error
		if ns, err = ReadNetworks(file); err != nil {
			return Network{}, nil, err
		}
	}
	nw, err := ns.Network(name)
	if err != nil {
		return Network{}, nil, err
	}
	return nw, ns, nil
}

// splitNetworkSpec splits FILE[:NAME] or NAME. The name follows the last
// colon when what follows has no path separator, so that C:\dir\f.json stays
// one file name.
func splitNetworkSpec(spec string) (file, name string) {
	isFile := func(s string) bool { return strings.ContainsAny(s, `/\`) || strings.HasSuffix(s, ".json") }
	if i := strings.LastIndexByte(spec, ':'); i > 0 && !strings.ContainsAny(spec[i+1:], `/\`) {
		return spec[:i], spec[i+1:]
	}
	if spec == "" || !isFile(spec) {
		return "", strings.TrimPrefix(spec, ":")
	}
	return spec, ""
}

// Apply sets cfg's protocol fields from the constants. The TTL bounds other
// than MaxTTL are the daemon's (see DaemonConfig).
func (c Constants) Apply(cfg *dht.Config) {
	cfg.NetworkID = c.NetworkID
	cfg.K = c.K
	cfg.Alpha = c.Alpha
	cfg.MaxTTL = c.MaxTTL
	cfg.MinTTL = c.MinTTL
	cfg.RefreshInterval = c.RefreshInterval
	cfg.RequestTimeout = c.RequestTimeout
}

// SeedAddrs returns the network's seeds as "host:port" strings, for
// dht.Node.Bootstrap and node.Client.
func (nw Network) SeedAddrs() []string {
	out := make([]string, len(nw.Seeds))
	for i, s := range nw.Seeds {
		out[i] = s.Addr()
	}
	return out
}

// --- JSON helpers: each error says what the field allows ---

// strictJSON decodes one JSON value and refuses trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// fields decodes a JSON object and refuses keys outside known.
func fields(raw json.RawMessage, known []string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := strictJSON(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("must be a JSON object with the fields %s", strings.Join(known, ", "))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown field %q: the fields are %s", k, strings.Join(known, ", "))
		}
	}
	return obj, nil
}

func jsonString(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: must be a string", raw)
	}
	return s, nil
}

func jsonInt(raw json.RawMessage, lo, hi int64) (int64, error) {
	var n json.Number
	if err := strictJSON(raw, &n); err == nil {
		if v, err := n.Int64(); err == nil && v >= lo && v <= hi {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s: must be a whole number from %d to %d", raw, lo, hi)
}

// jsonSeconds reads a duration given in seconds; fractions are allowed only
// where frac is set (timeouts below a second make sense, ages do not).
func jsonSeconds(raw json.RawMessage, frac bool) (time.Duration, error) {
	var n json.Number
	if err := strictJSON(raw, &n); err == nil {
		if frac {
			if v, err := n.Float64(); err == nil && v >= 0.001 && v <= 3600 {
				return time.Duration(v * float64(time.Second)).Round(time.Millisecond), nil
			}
			return 0, fmt.Errorf("%s: must be a number of seconds from 0.001 to 3600", raw)
		}
		if v, err := n.Int64(); err == nil && v >= minAgeSeconds && v <= maxAgeSeconds {
			return time.Duration(v) * time.Second, nil
		}
	} else if frac {
		return 0, fmt.Errorf("%s: must be a number of seconds from 0.001 to 3600", raw)
	}
	return 0, fmt.Errorf("%s: must be a whole number of seconds from %d to %d", raw, minAgeSeconds, maxAgeSeconds)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
