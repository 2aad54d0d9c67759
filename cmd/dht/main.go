// Command dht runs a DHT node, drives a running node through its HTTP API
// (or a short-lived node of its own when none runs), simulates networks and
// benchmarks them. It parses flags and calls the packages that do the work.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/node"
)

// Exit codes, documented in dht --help.
const (
	exitOK       = 0
	exitNotFound = 1 // the network (or node) holds nothing for the key
	exitUsage    = 2 // bad usage: a flag, an argument, nothing to talk to
	exitNetwork  = 3 // the node or the network failed: unreachable, no peers, timeout, quorum not reached
	// exitFailure is what node, sim and bench return when they fail, bad
	// usage or not.
	exitFailure = exitUsage
)

type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"node", "[flags]", "run a node in the foreground until SIGINT or SIGTERM", runNode},
		{"status", "[flags]", "describe the node: ID, addresses, network, seeds, contacts, stored values", runStatus},
		{"table", "[flags]", "print the routing table, one row per distance range 2^i..2^(i+1)", runTable},
		{"keys", "[flags]", "list the keys the node stores, with sizes, publishers and expiries", runKeys},
		{"ping", "[flags] HOST:PORT", "ask a node whether it is alive, and how fast it answers", runPing},
		{"lookup", "[flags] KEY", "find the nodes closest to KEY (with --trace: how the lookup went, round by round)", runLookup},
		{"put", "[flags] KEY VALUE|-\n       dht put -sign KEYFILE [-salt S] [-seq N|auto] [-cas N] VALUE|-\n       dht put -type TYPE -sign KEYFILE NAME JSON|-\n       dht put -immutable VALUE|-", "store VALUE (- reads standard input; or --file F) under KEY; with -sign, -type or -immutable a signed, typed or content-addressed record, signed here", runPut},
		{"get", "[flags] KEY\n       dht get -mutable PUBKEY [-salt S]\n       dht get -type TYPE [-owner PUBKEY] NAME\n       dht get -immutable KEY", "print the values under KEY, newest first, one per line; with -mutable, -type or -immutable the verified records and their sequences", runGet},
		{"del", "[flags] KEY\n       dht del -sign KEYFILE [-salt S]\n       dht del -type TYPE -sign KEYFILE NAME", "withdraw this publisher's value from KEY; with -sign the signed withdrawal of a signed (or -type: typed) record (alias: delete)", runDel},
		{"keygen", "[flags]", "make an ed25519 key pair for signed and typed records: a key file (0600) and its public key", runKeygen},
		{"listen", "[flags] KEY", "print every change to KEY's values as it happens, until interrupted", runListen},
		{"version", "[flags]", "print the program's version", runVersion},
		{"sim", "[flags]", "simulate a network of real nodes on a virtual clock and report", runSim},
		{"bench", "serve|cluster|idle [flags]", "measure nodes over real UDP on loopback", runBench},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		usage(stdout)
		return exitOK
	}
	name := args[0]
	if name == "delete" {
		name = "del" // the name the examples use
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "dht: unknown command %q\nRun 'dht --help' for the commands.\n", trimArg(args[0]))
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "dht: a Kademlia distributed hash table.\n\nUsage: dht COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
status, table, keys, ping, lookup, put, get, del and listen talk to the node
running on this machine (found through DATA/api.json; DATA is --data, $DHT_DATA,
or $XDG_DATA_HOME/dht, ~/.local/share/dht), or to the API at --api ADDR
($DHT_API) with --token ($DHT_TOKEN). Given --seeds HOST:PORT,... or
--network FILE[:NAME] (as dht node takes them), they run a short-lived node of
their own that joins through those seeds, or the network's.

Exit codes:
  0  ok
  1  not found: no value under the key (get, lookup --type value), nothing to withdraw (del)
  2  usage: a bad flag or argument, or no node to talk to
  3  network: the node or the network failed (unreachable, no peers, timeout,
     quorum not reached, unauthorized)

Run dht COMMAND --help for a command's flags.
`)
}

// newFlags makes a command's flag set, with a usage text that lists every flag.
func newFlags(c string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dht "+c, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		for _, cmd := range commands {
			if cmd.name == c {
				fmt.Fprintf(fs.Output(), "Usage: dht %s %s\n\n%s.\n\nFlags:\n", c, cmd.args, upperFirst(cmd.summary))
			}
		}
		fs.PrintDefaults()
	}
	return fs
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// parse parses flags, which may come before, between or after the
// arguments ("--" ends them); it returns false with the exit code when the
// command should stop: help asked for (the usage goes to the flag set's
// output), or a bad flag (one line saying what is wrong, one pointing at
// --help).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	out := fs.Output()
	usage := fs.Usage
	fs.SetOutput(io.Discard) // the flag package's own message would come with the whole usage
	fs.Usage = func() {}
	defer func() { fs.SetOutput(out); fs.Usage = usage }()
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			fs.SetOutput(out)
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return exitOK, false
			}
			return usageError(fs, "%v", err), false
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			positional = append(positional, rest...) // everything after "--" is an argument
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	fs.Parse(append([]string{"--"}, positional...)) // so that fs.Args() is the arguments
	return 0, true
}

// usageError prints a usage error as the command line wants it: one line
// naming the problem, one pointing at --help.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fmt.Fprintf(fs.Output(), "Run '%s --help' for usage.\n", fs.Name())
	return exitUsage
}

// common are the flags of the commands that can run a short-lived node.
// Each means what the same flag of dht node means: --network names a
// network (a networks file and a name in it), whose seeds and constants
// --seeds, --network-id, --k and --alpha override.
type common struct {
	seeds     hostPorts
	network   string
	networkID networkID
	k         intRange
	alpha     intRange
	given     map[string]bool // the flags on the command line
	// requestTimeout is the network's, when -network names one.
	requestTimeout time.Duration
}

func (c *common) register(fs *flag.FlagSet, seedsHelp string) {
	c.k = intRange{v: 20, min: 1, max: 32}
	c.alpha = intRange{v: 3, min: 1, max: 32}
	fs.Var(&c.seeds, "seeds", seedsHelp)
	fs.StringVar(&c.network, "network", "", "join the network `FILE[:NAME]` with a short-lived node of this command's own: a networks file and the network's name in it, or a built-in network (main, local); its seeds and constants, unless -seeds, -network-id, -k or -alpha say otherwise")
	fs.Var(&c.networkID, "network-id", "the network number `N` in every datagram, 0 to 4294967295 (decimal or 0x hex); nodes drop other networks' datagrams (default the -network's, else 0)")
	fs.Var(&c.k, "k", "bucket size and replication factor, `N` from 1 to 32; with -network, the network's unless given")
	fs.Var(&c.alpha, "alpha", "lookup parallelism, `N` from 1 to K; with -network, the network's unless given")
}

// check reads the network (its constants are the defaults of the flags
// not given) and checks the flags that bound each other.
func (c *common) check(fs *flag.FlagSet, stderr io.Writer) bool {
	c.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	fs.SetOutput(stderr)
	if c.network != "" {
		nw, _, err := node.LoadNetwork(c.network)
		if err != nil {
			usageError(fs, "invalid value %q for flag -network: %s", trimArg(c.network), strings.TrimPrefix(err.Error(), "networks file "))
			return false
		}
		if !c.given["seeds"] {
			c.seeds = nw.SeedAddrs()
			if len(c.seeds) == 0 {
				usageError(fs, "network %s lists no seeds: give -seeds HOST:PORT", nw.Name)
				return false
			}
		}
		if !c.given["network-id"] {
			c.networkID.v = nw.Constants.NetworkID
		}
		if !c.given["k"] && nw.Constants.K >= c.k.min && nw.Constants.K <= c.k.max {
			c.k.v = nw.Constants.K
		}
		if !c.given["alpha"] && nw.Constants.Alpha >= c.alpha.min && nw.Constants.Alpha <= c.alpha.max {
			c.alpha.v = nw.Constants.Alpha
		}
		c.requestTimeout = nw.Constants.RequestTimeout
	}
	if c.alpha.v > c.k.v {
		usageError(fs, "invalid value %d for flag -alpha: must be at most -k (%d)", c.alpha.v, c.k.v)
		return false
	}
	return true
}

// shortLived reports whether the flags ask for a short-lived node.
func (c *common) shortLived() bool { return len(c.seeds) > 0 || c.network != "" }

func (c *common) apply(cfg *dht.Config) {
	cfg.K, cfg.Alpha, cfg.NetworkID = c.k.v, c.alpha.v, c.networkID.v
	if c.requestTimeout > 0 {
		cfg.RequestTimeout = c.requestTimeout
	}
}

func noArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() > 0 {
		fs.SetOutput(stderr)
		usageError(fs, "unexpected argument %q", trimArg(fs.Arg(0)))
		return false
	}
	return true
}

// trimArg shortens an argument for an error message.
func trimArg(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
