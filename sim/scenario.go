package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// Limits on scenario options. They keep a mistyped option from asking for
// more memory or time than any machine has, and they bound every table the
// simulator keeps (a report holds one sample per lookup).
const (
	MaxNodes       = 1_000_000
	MaxSeeds       = 16
	MaxKeys        = 1_000_000
	MaxLookups     = 10_000_000
	MaxConcurrency = 100_000
	MaxProbeKeys   = 10_000
	MaxLatency     = 10 * time.Second
	MaxSigma       = 3.0
	MaxLoss        = 0.9
	MaxChurnRate   = 1.0 // a whole network's worth of nodes per virtual minute
	MaxPhase       = 24 * time.Hour
)

// Scenario describes one simulated run. Zero fields take the defaults of
// DefaultScenario, so a scenario file names only what it changes. It is
// plain data: copy it freely; a Scenario is not modified by Run.
type Scenario struct {
	// Name labels the run in reports; free text.
	Name string `json:"name,omitempty"`
	// Nodes is how many nodes join the network (default 10,000).
	Nodes int `json:"nodes"`
	// K is the bucket size and replication factor (default 20).
	K int `json:"k"`
	// Alpha is the lookup parallelism (default 3).
	Alpha int `json:"alpha"`
	// Seed seeds everything random in the run: node IDs, latency, loss,
	// which node does what. Same seed, same report. 0 is a valid seed,
	// and the default.
	Seed uint64 `json:"seed"`
	// Seeds is how many of the first nodes the others bootstrap through
	// (default 3). The first starts the network; seeds never leave.
	Seeds int `json:"seeds"`
	// JoinEvery staggers the joins in virtual time (default 10ms).
	JoinEvery Duration `json:"join_every"`
	// Latency is the one-way delay model (default uniform:10ms:60ms).
	Latency Latency `json:"latency"`
	// Loss is the probability that a datagram is dropped, 0 to 0.9.
	Loss float64 `json:"loss"`
	// Keys is how many keys are stored, each from a random node (default
	// 1,000).
	Keys int `json:"keys"`
	// ValueSize is the size in bytes of each stored value (default 32).
	ValueSize int `json:"value_size"`
	// Lookups is how many Gets of stored keys run from random nodes
	// (default 20,000).
	Lookups int `json:"lookups"`
	// Concurrency bounds the puts and lookups in flight at once across the
	// whole network (default 64).
	Concurrency int `json:"concurrency"`
	// ProbeEvery is how often the churn and partition phases probe the
	// network by looking up stored keys (default 1m).
	ProbeEvery Duration `json:"probe_every"`
	// ProbeKeys is how many of the stored keys each probe looks up, each
	// from a random node (default 500, at most Keys).
	ProbeKeys int `json:"probe_keys"`
	// Churn, if set, runs a churn phase after the lookups.
	Churn *Churn `json:"churn,omitempty"`
	// Partition, if set, runs a partition phase after the lookups (and
	// after churn, when both are set).
	Partition *Partition `json:"partition,omitempty"`
	// Waves, if set, runs a waves phase after the others: the network is
	// replaced a share at a time (see Waves).
	Waves *Waves `json:"waves,omitempty"`
	// Idle, if set, ends the run with a phase this long in which nothing
	// happens but the nodes' own maintenance (replication, refreshes,
	// pings): its datagrams and bytes, per stored value and hour, are the
	// report's maintenance figures.
	Idle Duration `json:"idle,omitempty"`
	// Preload, if set, replaces the put phase: every key's record goes
	// straight into the stores of its K closest nodes (publisher the key,
	// version 1), with no traffic, as if the network had long settled;
	// the stores' MaxValues is raised to fit. For measuring maintenance at
	// many values per node.
	Preload bool `json:"preload,omitempty"`
	// ReplicateInterval is every node's Config.ReplicateInterval: 0 for
	// the default (1h), negative for no replication at all.
	ReplicateInterval Duration `json:"replicate_interval,omitempty"`
	// Malicious, if set, makes the run adversarial: for each setting
	// (shares of the nodes by malicious kind, see Mix) a network of its
	// own joins, the keys are put, the malicious nodes turn, and gets with
	// plain lookups and with DisjointPaths disjoint paths alternate,
	// Lookups of each (see AdversaryReport). Runs without it are as
	// before.
	Malicious Malicious `json:"malicious,omitempty"`
	// DisjointPaths is the paths of an adversarial run's disjoint gets
	// (default 4, see DefaultDisjointPaths).
	DisjointPaths int `json:"disjoint_paths,omitempty"`
	// Signed, in an adversarial run, makes the keys' values signed
	// (mutable) records of one key pair, each put at sequence 1 and then
	// 2, so that forgers can serve a forged or a stale version and
	// readers verify (see Mix.ForgeAs).
	Signed bool `json:"signed,omitempty"`
	// Identity sets every node's Config.RequireIdentity: each node's ID is
	// the hash of an ed25519 key drawn from its seeded random stream (so
	// runs stay reproducible), contacts must prove their key before they
	// count, and malicious nodes can prove only their own IDs (see Mix).
	Identity bool `json:"identity,omitempty"`
	// IdentityDifficulty is every node's Config.Difficulty with Identity:
	// the leading zero bits each ID must carry, 0 (the default) to
	// MaxIdentityDifficulty. Every node draws 2^d keys on average to join.
	IdentityDifficulty int `json:"identity_difficulty,omitempty"`
}

// MaxIdentityDifficulty bounds Scenario.IdentityDifficulty: a network's
// keys cost 2^d key generations per node, a few seconds of CPU per 1,000
// nodes at 8.
const MaxIdentityDifficulty = 8

// Churn describes nodes leaving and joining. Rates are shares of the
// scenario's node count per virtual minute, so one file fits every size:
// Leave 0.01 with 10,000 nodes is 100 departures a minute. Departures and
// arrivals are Poisson processes drawn from the seed. A departing node
// vanishes without a word (its endpoint closes), taking its stored values with
// it; an arriving node is new (new ID, new address) and bootstraps through
// the seeds.
type Churn struct {
	Leave float64  `json:"leave"`    // share of Nodes leaving per virtual minute, 0 to 1
	Join  float64  `json:"join"`     // share of Nodes joining per virtual minute, 0 to 1
	For   Duration `json:"duration"` // how long churn lasts (default 30m)
}

// Partition describes a split of the network: at virtual time At into the
// phase, a random share Fraction of the nodes is cut off from the rest
// (datagrams between the sides are dropped); Duration later the network heals,
// and probing goes on for After.
type Partition struct {
	Fraction float64  `json:"fraction"` // share of nodes on the minority side, above 0 and at most 0.5
	At       Duration `json:"at"`       // when the split happens (default: one probe interval in)
	For      Duration `json:"duration"` // how long it lasts (default 10m)
	After    Duration `json:"after"`    // probing after the heal (default 10m)
}

// DefaultScenario returns the scenario that zero fields fall back to.
func DefaultScenario() Scenario {
	return Scenario{
		Nodes:       10_000,
		K:           20,
		Alpha:       3,
		Seeds:       3,
		JoinEvery:   Duration(10 * time.Millisecond),
		Latency:     Latency{Model: "uniform", Min: Duration(10 * time.Millisecond), Max: Duration(60 * time.Millisecond)},
		Keys:        1_000,
		ValueSize:   32,
		Lookups:     20_000,
		Concurrency: 64,
		ProbeEvery:  Duration(time.Minute),
		ProbeKeys:   500,
	}
}

// Validate fills zero fields with defaults and checks every option,
// returning an error that names the first bad one and what it allows.
func (s *Scenario) Validate() error {
	d := DefaultScenario()
	fillInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillInt(&s.Nodes, d.Nodes)
	fillInt(&s.K, d.K)
	fillInt(&s.Alpha, d.Alpha)
	fillInt(&s.Seeds, d.Seeds)
	fillInt(&s.Keys, d.Keys)
	fillInt(&s.ValueSize, d.ValueSize)
	fillInt(&s.Lookups, d.Lookups)
	fillInt(&s.Concurrency, d.Concurrency)
	fillInt(&s.ProbeKeys, min(d.ProbeKeys, s.Keys))
	if s.JoinEvery == 0 {
		s.JoinEvery = d.JoinEvery
	}
	if s.ProbeEvery == 0 {
		s.ProbeEvery = d.ProbeEvery
	}
	if s.Latency.Model == "" {
		s.Latency = d.Latency
	}
	// Fewer seeds than asked for when the network is that small.
	s.Seeds = min(s.Seeds, max(s.Nodes, 1))

	checks := []struct {
		bad  bool
		name string
		val  any
		want string
	}{
		{s.Nodes < 2 || s.Nodes > MaxNodes, "nodes", s.Nodes, fmt.Sprintf("must be from 2 to %d", MaxNodes)},
		{s.K < 1 || s.K > wire.MaxContacts, "k", s.K, fmt.Sprintf("must be from 1 to %d", wire.MaxContacts)},
		{s.Alpha < 1 || s.Alpha > s.K, "alpha", s.Alpha, fmt.Sprintf("must be from 1 to k (%d)", s.K)},
		{s.Seeds < 1 || s.Seeds > MaxSeeds, "seeds", s.Seeds, fmt.Sprintf("must be from 1 to %d", MaxSeeds)},
		{s.JoinEvery < 0 || s.JoinEvery.D() > time.Minute, "join_every", s.JoinEvery, "must be a duration above 0 and at most 1m"},
		{!(s.Loss >= 0 && s.Loss <= MaxLoss), "loss", s.Loss, fmt.Sprintf("must be a probability from 0 to %v", MaxLoss)},
		{s.Keys < 1 || s.Keys > MaxKeys, "keys", s.Keys, fmt.Sprintf("must be from 1 to %d", MaxKeys)},
		{s.ValueSize < 1 || s.ValueSize > wire.MaxValueSize, "value_size", s.ValueSize, fmt.Sprintf("must be from 1 to %d bytes", wire.MaxValueSize)},
		{s.Lookups < 1 || s.Lookups > MaxLookups, "lookups", s.Lookups, fmt.Sprintf("must be from 1 to %d", MaxLookups)},
		{s.Concurrency < 1 || s.Concurrency > MaxConcurrency, "concurrency", s.Concurrency, fmt.Sprintf("must be from 1 to %d", MaxConcurrency)},
		{s.ProbeEvery.D() < time.Second || s.ProbeEvery.D() > MaxPhase, "probe_every", s.ProbeEvery, "must be a duration from 1s to 24h"},
		{s.ProbeKeys < 1 || s.ProbeKeys > min(s.Keys, MaxProbeKeys), "probe_keys", s.ProbeKeys, fmt.Sprintf("must be from 1 to keys (%d) and at most %d", s.Keys, MaxProbeKeys)},
	}
	for _, c := range checks {
		if c.bad {
			return fmt.Errorf("%s = %v: %s", c.name, c.val, c.want)
		}
	}
	if err := s.Latency.validate(); err != nil {
		return err
	}
	if err := s.validateAdversary(); err != nil { // adversary.go
		return err
	}
	switch {
	case s.IdentityDifficulty < 0 || s.IdentityDifficulty > MaxIdentityDifficulty:
		return fmt.Errorf("identity_difficulty = %d: must be from 0 to %d", s.IdentityDifficulty, MaxIdentityDifficulty)
	case s.IdentityDifficulty > 0 && !s.Identity:
		return errors.New("identity_difficulty: a difficulty is an option of node identity; set \"identity\": true too")
	}
	if c := s.Churn; c != nil {
		if c.For == 0 {
			c.For = Duration(30 * time.Minute)
		}
		switch {
		case !(c.Leave >= 0 && c.Leave <= MaxChurnRate):
			return fmt.Errorf("churn.leave = %v: must be a share of the nodes per minute from 0 to %v", c.Leave, MaxChurnRate)
		case !(c.Join >= 0 && c.Join <= MaxChurnRate):
			return fmt.Errorf("churn.join = %v: must be a share of the nodes per minute from 0 to %v", c.Join, MaxChurnRate)
		case c.For < 0 || c.For.D() > MaxPhase:
			return fmt.Errorf("churn.duration = %v: must be a duration above 0 and at most 24h", c.For)
		}
	}
	if err := s.validateMaintenance(); err != nil {
		return err
	}
	if p := s.Partition; p != nil {
		if p.At == 0 {
			p.At = s.ProbeEvery
		}
		if p.For == 0 {
			p.For = Duration(10 * time.Minute)
		}
		if p.After == 0 {
			p.After = Duration(10 * time.Minute)
		}
		switch {
		case !(p.Fraction > 0 && p.Fraction <= 0.5):
			return fmt.Errorf("partition.fraction = %v: must be a share of the nodes above 0 and at most 0.5", p.Fraction)
		case p.At < 0 || p.At.D() > MaxPhase:
			return fmt.Errorf("partition.at = %v: must be a duration from 0 to 24h", p.At)
		case p.For < 0 || p.For.D() > MaxPhase:
			return fmt.Errorf("partition.duration = %v: must be a duration above 0 and at most 24h", p.For)
		case p.After < 0 || p.After.D() > MaxPhase:
			return fmt.Errorf("partition.after = %v: must be a duration above 0 and at most 24h", p.After)
		}
	}
	return nil
}

// ParseScenario decodes a scenario from JSON. Unknown fields are errors, so
// that a misspelt option is not silently ignored. It does not validate.
func ParseScenario(data []byte) (Scenario, error) {
	var s Scenario
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	if dec.More() {
		return Scenario{}, errors.New("scenario: trailing data after the JSON object")
	}
	return s, nil
}

// LoadScenario reads a scenario file. It does not validate: options given
// on a command line may still override it.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, err
	}
	s, err := ParseScenario(data)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Duration is a time.Duration that reads and writes JSON as a string such as
// "30s" or "10m". In a Scenario, zero stands for the option's default.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// Latency is a one-way delay model: "fixed" (every datagram takes Fixed),
// "uniform" (drawn from [Min, Max] per datagram) or "longtail" (a log-normal
// base delay per pair of nodes with the given Median and Sigma, plus a little
// jitter; see memnet.LongTail). Its text form, accepted by ParseLatency and
// the --latency flag, is fixed:30ms, uniform:10ms:60ms or longtail:50ms:0.8.
// The zero Latency stands for the default model in a Scenario.
type Latency struct {
	Model  string   `json:"model"`
	Fixed  Duration `json:"fixed,omitempty"`
	Min    Duration `json:"min,omitempty"`
	Max    Duration `json:"max,omitempty"`
	Median Duration `json:"median,omitempty"`
	Sigma  float64  `json:"sigma,omitempty"`
}

// LatencyForms lists the text forms ParseLatency accepts, for messages.
const LatencyForms = "fixed:DELAY, uniform:MIN:MAX or longtail:MEDIAN:SIGMA (e.g. fixed:30ms, uniform:10ms:60ms, longtail:50ms:0.8)"

// ParseLatency reads a latency model's text form (see Latency) and checks it.
func ParseLatency(s string) (Latency, error) {
	parts := strings.Split(s, ":")
	bad := func() (Latency, error) {
		return Latency{}, fmt.Errorf("latency %q: must be %s", s, LatencyForms)
	}
	dur := func(t string) (Duration, bool) {
		d, err := time.ParseDuration(t)
		return Duration(d), err == nil
	}
	var l Latency
	switch {
	case parts[0] == "fixed" && len(parts) == 2:
		d, ok := dur(parts[1])
		if !ok {
			return bad()
		}
		l = Latency{Model: "fixed", Fixed: d}
	case parts[0] == "uniform" && len(parts) == 3:
		lo, ok1 := dur(parts[1])
		hi, ok2 := dur(parts[2])
		if !ok1 || !ok2 {
			return bad()
		}
		l = Latency{Model: "uniform", Min: lo, Max: hi}
	case parts[0] == "longtail" && len(parts) == 3:
		m, ok := dur(parts[1])
		sigma, err := strconv.ParseFloat(parts[2], 64)
		if !ok || err != nil {
			return bad()
		}
		l = Latency{Model: "longtail", Median: m, Sigma: sigma}
	default:
		return bad()
	}
	if err := l.validate(); err != nil {
		return Latency{}, err
	}
	return l, nil
}

// String returns the text form of l.
func (l Latency) String() string {
	switch l.Model {
	case "fixed":
		return "fixed:" + l.Fixed.String()
	case "uniform":
		return "uniform:" + l.Min.String() + ":" + l.Max.String()
	case "longtail":
		return "longtail:" + l.Median.String() + ":" + strconv.FormatFloat(l.Sigma, 'g', -1, 64)
	}
	return l.Model
}

func (l Latency) validate() error {
	inRange := func(d Duration) bool { return d >= 0 && d.D() <= MaxLatency }
	switch l.Model {
	case "fixed":
		if !inRange(l.Fixed) {
			return fmt.Errorf("latency %v: the delay must be from 0 to %v", l, MaxLatency)
		}
	case "uniform":
		if !inRange(l.Min) || !inRange(l.Max) || l.Min > l.Max {
			return fmt.Errorf("latency %v: must have 0 <= MIN <= MAX <= %v", l, MaxLatency)
		}
	case "longtail":
		if l.Median <= 0 || l.Median.D() > MaxLatency {
			return fmt.Errorf("latency %v: the median must be above 0 and at most %v", l, MaxLatency)
		}
		if !(l.Sigma >= 0 && l.Sigma <= MaxSigma) || math.IsNaN(l.Sigma) {
			return fmt.Errorf("latency %v: sigma must be from 0 to %v", l, MaxSigma)
		}
	default:
		return fmt.Errorf("latency model %q: must be fixed, uniform or longtail", l.Model)
	}
	return nil
}

// model returns the memnet latency model; the longtail pair hash is seeded
// from the scenario's seed so that the same seed gives the same paths.
func (l Latency) model(seed uint64) memnet.Latency {
	switch l.Model {
	case "fixed":
		return memnet.Fixed(l.Fixed.D())
	case "uniform":
		return memnet.Uniform(l.Min.D(), l.Max.D())
	default:
		return memnet.LongTail(l.Median.D(), l.Sigma, seed^0x6c6174656e6379)
	}
}
