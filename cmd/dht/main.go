// Command dht runs a DHT node, talks to a network through a short-lived
// node, simulates networks and benchmarks them. It parses flags and calls
// the packages that do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/node"
)

// Exit codes.
const (
	exitOK       = 0
	exitNotFound = 1 // get: the network holds no value for the key
	exitFailure  = 2 // bad usage, or the operation failed
)

type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) int
}

var commands []command

func init() {
	commands = []command{
		{"node", "[flags]", "run a node in the foreground until SIGINT or SIGTERM", runNode},
		{"put", "[flags] KEY VALUE", "store VALUE under KEY through a short-lived node", runPut},
		{"get", "[flags] KEY", "print the values under KEY, one per line", runGet},
		{"sim", "[flags]", "simulate a network of real nodes on a virtual clock and report", runSim},
		{"bench", "serve|cluster|idle [flags]", "measure nodes over real UDP on loopback", runBench},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitFailure
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "dht: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitFailure
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "dht: a Kademlia distributed hash table.\n\nUsage: dht COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun dht COMMAND --help for a command's flags.")
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

// parse parses flags; it returns false with the exit code when the command
// should stop (help asked for, or a bad flag).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitFailure, false
	}
	return 0, true
}

// common are the flags every command that joins a network shares.
type common struct {
	seeds   hostPorts
	network networkID
	k       intRange
	alpha   intRange
}

func (c *common) register(fs *flag.FlagSet, seedsHelp string) {
	c.k = intRange{v: 20, min: 1, max: 32}
	c.alpha = intRange{v: 3, min: 1, max: 32}
	fs.Var(&c.seeds, "seeds", seedsHelp)
	fs.Var(&c.network, "network", "network `ID` (0 to 4294967295); nodes ignore other networks")
	fs.Var(&c.k, "k", "bucket size and replication factor, `N` from 1 to 32")
	fs.Var(&c.alpha, "alpha", "lookup parallelism, `N` from 1 to K")
}

func (c *common) check(fs *flag.FlagSet, stderr io.Writer) bool {
	if c.alpha.v > c.k.v {
		fmt.Fprintf(stderr, "%s: invalid value %d for flag -alpha: must be at most -k (%d)\n", fs.Name(), c.alpha.v, c.k.v)
		return false
	}
	return true
}

func (c *common) apply(cfg *dht.Config) {
	cfg.K, cfg.Alpha, cfg.NetworkID = c.k.v, c.alpha.v, c.network.v
}

func noArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (flags go before arguments)\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

// clientFlags are the flags of put and get.
type clientFlags struct {
	common
	timeout positiveDuration
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	f.common.register(fs, "comma-separated `HOST:PORT` of nodes to ask (required)")
	f.timeout = positiveDuration{30 * time.Second}
	fs.Var(&f.timeout, "timeout", "give up after this `DURATION`")
}

func (f *clientFlags) start(fs *flag.FlagSet, stderr io.Writer, nargs int) (context.Context, context.CancelFunc, dht.Config, bool) {
	if !f.check(fs, stderr) {
		return nil, nil, dht.Config{}, false
	}
	if len(f.seeds) == 0 {
		fmt.Fprintf(stderr, "%s: flag -seeds is required: HOST:PORT of at least one node of the network\n", fs.Name())
		return nil, nil, dht.Config{}, false
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(stderr, "%s: want %d argument(s), got %d\n", fs.Name(), nargs, fs.NArg())
		fs.Usage()
		return nil, nil, dht.Config{}, false
	}
	cfg := node.ClientConfig(f.seeds, f.network.v)
	f.apply(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout.v)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	return ctx, func() { stop(); cancel() }, cfg, true
}

func runPut(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("put", stderr)
	var f clientFlags
	f.register(fs)
	ttl := positiveDuration{time.Hour}
	fs.Var(&ttl, "ttl", "`DURATION` nodes keep the value (each node caps it at its own maximum, 24h by default)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ctx, cancel, cfg, ok := f.start(fs, stderr, 2)
	if !ok {
		return exitFailure
	}
	defer cancel()
	pr, err := node.Put(ctx, cfg, f.seeds, fs.Arg(0), []byte(fs.Arg(1)), ttl.v)
	if err != nil {
		fmt.Fprintf(stderr, "dht put: %s\n", strings.TrimPrefix(err.Error(), "dht: "))
		return exitFailure
	}
	fmt.Fprintf(stdout, "stored on %d node(s)\n", pr.Stored)
	for _, r := range pr.Receipts {
		if r.Outcome == dht.Refused {
			fmt.Fprintf(stdout, "refused by %v: %s\n", r.Node.Addr, r.Reason)
		}
	}
	return exitOK
}

func runGet(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("get", stderr)
	var f clientFlags
	f.register(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ctx, cancel, cfg, ok := f.start(fs, stderr, 1)
	if !ok {
		return exitFailure
	}
	defer cancel()
	gr, err := node.Get(ctx, cfg, f.seeds, fs.Arg(0))
	if node.IsNotFound(err) {
		fmt.Fprintln(stderr, "not found")
		return exitNotFound
	}
	if err != nil {
		fmt.Fprintf(stderr, "dht get: %s\n", strings.TrimPrefix(err.Error(), "dht: "))
		return exitFailure
	}
	if gr.Incomplete != "" {
		fmt.Fprintf(stderr, "dht get: the answer may be incomplete: %s\n", gr.Incomplete)
	}
	lines := make([]string, len(gr.Values))
	for i, v := range gr.Values {
		lines[i] = string(v.Data)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return exitOK
}
