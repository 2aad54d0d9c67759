package main

// The commands that drive a node: how they find it (a running node's API,
// or a short-lived node of their own), the flags they share, and how their
// errors become exit codes.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/client"
	"github.com/dhtkit/dht/id"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// cliFlags are the flags of the commands that drive a node. Each name means
// the same in every command.
type cliFlags struct {
	common
	api     string
	token   string
	data    string
	json    bool
	timeout positiveDuration
	hex     bool // the KEY argument is an ID in hex

	stdout, stderr io.Writer
	fs             *flag.FlagSet
	where          string // the node talked to, once found
}

// Usage texts of flags that more than one command defines itself.
const (
	jsonUsage      = "print the result as JSON (for a node's results, what its HTTP API answers)"
	publisherUsage = "the publisher `ID` (40 hex digits; default the node's own): put publishes as it, del withdraws its value"
)

// newCLI makes the flag set of a command that drives a node; keyed adds
// --hex for the commands whose argument is a KEY.
func newCLI(name string, stdout, stderr io.Writer, keyed bool) *cliFlags {
	f := &cliFlags{stdout: stdout, stderr: stderr, fs: newFlags(name, stderr)}
	fs := f.fs
	fs.StringVar(&f.api, "api", os.Getenv("DHT_API"), "talk to the node whose HTTP API is at `ADDR` (host:port or URL; default $DHT_API, else the node running on this machine)")
	fs.StringVar(&f.token, "token", "", "the node's API `TOKEN` (default $DHT_TOKEN, else DATA/api.token of the node found in DATA)")
	fs.StringVar(&f.data, "data", "", "the node's data `DIR`, where its api.json says where its API is (default $DHT_DATA, else $XDG_DATA_HOME/dht or ~/.local/share/dht)")
	fs.BoolVar(&f.json, "json", false, jsonUsage)
	f.timeout = positiveDuration{30 * time.Second}
	fs.Var(&f.timeout, "timeout", "give up after this `DURATION`")
	f.common.register(fs, "join through these nodes, comma-separated `HOST:PORT,...`, with a short-lived node of this command's own instead of talking to a running node (default the -network's seeds)")
	if keyed {
		fs.BoolVar(&f.hex, "hex", false, "KEY is an ID written as 40 hex digits, not a string to hash with SHA-1")
	}
	return f
}

// parse parses the command line and checks it has want arguments.
func (f *cliFlags) parse(args []string, want ...int) (int, bool) {
	if code, ok := parse(f.fs, args); !ok {
		return code, false
	}
	if !f.check(f.fs, f.stderr) {
		return exitUsage, false
	}
	if f.api != "" && f.shortLived() {
		return f.usage("give -api (a running node) or -seeds/-network (a short-lived node), not both"), false
	}
	for _, n := range want {
		if f.fs.NArg() == n {
			return 0, true
		}
	}
	if len(want) > 0 {
		if f.fs.NArg() > want[len(want)-1] {
			return f.usage("unexpected argument %q", trimArg(f.fs.Arg(want[len(want)-1]))), false
		}
		return f.usage("missing %s", missing(f.fs.Name())), false
	}
	return 0, true
}

// missing names the arguments a command needs, from its usage line.
func missing(name string) string {
	for _, c := range commands {
		if "dht "+c.name == name {
			first, _, _ := strings.Cut(c.args, "\n") // the plain form's line
			return strings.TrimSpace(strings.TrimPrefix(first, "[flags]"))
		}
	}
	return "arguments"
}

func (f *cliFlags) usage(format string, args ...any) int { return usageError(f.fs, format, args...) }

// key parses a KEY argument: a string (hashed), or with --hex an ID.
func (f *cliFlags) key(s string) (id.ID, bool) {
	if f.hex {
		k, err := api.ParseID(s)
		if err != nil {
			f.usage("bad KEY %q for -hex: %v", trimArg(s), err)
			return id.ID{}, false
		}
		return k, true
	}
	if s == "" {
		f.usage("KEY is empty")
		return id.ID{}, false
	}
	if len(s) > api.MaxKey {
		f.usage("KEY has %d bytes; at most %d are allowed", len(s), api.MaxKey)
		return id.ID{}, false
	}
	return id.Key(s), true
}

// context is the command's context: it ends at --timeout (unless
// forever) or at SIGINT or SIGTERM.
func (f *cliFlags) context(forever bool) (context.Context, context.CancelFunc) {
	ctx, cancel := context.Background(), func() {}
	if !forever {
		ctx, cancel = context.WithTimeout(ctx, f.timeout.v)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	return ctx, func() { stop(); cancel() }
}

// apiFile is DATA/api.json, written by a running node.
type apiFile struct {
	Addr  string `json:"addr"`
	PID   int    `json:"pid"`
	Token string `json:"token,omitempty"` // a --memory node may keep its token here
}

// dataDirs are the directories to look for a running node in: the one
// given, or the default data directory and the runtime one (where a node
// without a data directory says where it is).
func (f *cliFlags) dataDirs() []string {
	if f.data != "" {
		return []string{f.data}
	}
	if d := os.Getenv("DHT_DATA"); d != "" {
		return []string{d}
	}
	var dirs []string
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "dht"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".local", "share", "dht"))
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "dht"))
	}
	return dirs
}

// findNode returns the API address and token of the node running with
// one of dirs, skipping files left by a node that is gone.
func findNode(dirs []string) (addr, token, dir string, ok bool) {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "api.json"))
		if err != nil {
			continue
		}
		var a apiFile
		if json.Unmarshal(b, &a) != nil || a.Addr == "" {
			continue
		}
		if a.PID > 0 && !alive(a.PID) {
			continue // killed without removing its file
		}
		token := a.Token
		if t, err := os.ReadFile(filepath.Join(d, "api.token")); err == nil {
			token = strings.TrimSpace(string(t))
		}
		return a.Addr, token, d, true
	}
	return "", "", "", false
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// target is what a command talks to.
type target struct {
	api.Backend
	where string         // for messages: "the node at ADDR", "a short-lived node"
	c     *client.Client // set when talking to a running node
	close func()
}

// backend finds what to talk to: --api, else --seeds (a short-lived node),
// else the node running on this machine. It reports a failure itself and
// returns the exit code.
func (f *cliFlags) backend(ctx context.Context) (*target, int, bool) {
	token := f.token
	if token == "" {
		token = os.Getenv("DHT_TOKEN")
	}
	addr := f.api
	where := "the node at " + addr
	if addr == "" && !f.shortLived() {
		a, fileToken, dir, ok := findNode(f.dataDirs())
		if !ok {
			looked := strings.Join(f.dataDirs(), " or ")
			if looked == "" {
				looked = "no data directory"
			}
			return nil, f.usage("no running node found (no api.json in %s) and neither -seeds nor -network is given: start one with 'dht node', or give -api ADDR, -seeds HOST:PORT or -network FILE[:NAME]", looked), false
		}
		addr, where = a, fmt.Sprintf("the node of %s at %s", dir, a)
		if token == "" {
			token = fileToken
		}
	}
	if addr != "" {
		c, err := client.New(addr, client.Options{Token: token})
		if err != nil {
			return nil, f.usage("bad -api: %v", err), false
		}
		f.where = where
		return &target{Backend: c, where: where, c: c, close: func() {}}, 0, true
	}
	stop := f.progress(fmt.Sprintf("joining through %d seed(s)…", len(f.seeds)))
	l, err := startLocal(ctx, f)
	stop()
	if err != nil {
		return nil, f.fail(err), false
	}
	return &target{Backend: l, where: "a short-lived node", close: l.Close}, 0, true
}

// fail reports err from the node and returns its exit code.
func (f *cliFlags) fail(err error) int {
	msg := strings.TrimPrefix(err.Error(), "dht: ")
	var ae *api.Error
	code := exitNetwork
	switch {
	case errors.Is(err, api.ErrNotFound):
		code = exitNotFound
	case errors.Is(err, api.ErrInvalid): // a record the nodes refuse: the user's to fix
		code = exitUsage
	case errors.As(err, &ae) && (ae.Code == api.CodeBadKey || ae.Code == api.CodeBadRequest || ae.Code == api.CodeTooLarge):
		code = exitUsage
	case errors.Is(err, api.ErrAuth):
		msg += " (give the node's token with -token or $DHT_TOKEN)"
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("no answer within %v (-timeout)", f.timeout.v)
	case !errors.As(err, &ae) && f.where != "":
		msg = fmt.Sprintf("cannot reach %s: %s", f.where, strings.TrimPrefix(msg, "client: "))
	}
	fmt.Fprintf(f.stderr, "%s: %s\n", f.fs.Name(), msg)
	return code
}

// printJSON prints v as the API would.
func (f *cliFlags) printJSON(v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(f.stderr, "%s: %v\n", f.fs.Name(), err)
		return
	}
	f.stdout.Write(append(b, '\n'))
}

// progressDelay is how long an operation runs before its progress shows,
// so that a quick one draws nothing; zero or less draws at once (tests).
var progressDelay = 300 * time.Millisecond

// stderrIsTerminal reports whether w is a terminal: a spinner on anything
// else (a pipe, a file, /dev/null, a CI log) would be noise in it. Tests
// replace it.
var stderrIsTerminal = isTerminal

// isTerminal reports whether w is a terminal (not merely a character
// device: /dev/null is one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows what a command waits for (joining, a put waiting for its
// nodes, a slow lookup) as a spinner line on stderr once it has taken
// progressDelay, on a terminal only; the returned function stops it and
// clears the line.
func (f *cliFlags) progress(what string) func() {
	if !stderrIsTerminal(f.stderr) {
		return func() {}
	}
	newBar := func() *progressbar.ProgressBar {
		bar := progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(f.stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond))
		bar.RenderBlank()
		return bar
	}
	var bar *progressbar.ProgressBar
	if progressDelay <= 0 {
		bar = newBar()
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if bar == nil {
			wait := time.NewTimer(progressDelay)
			defer wait.Stop()
			select {
			case <-done:
				return // over before it was worth showing
			case <-wait.C:
			}
			bar = newBar()
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Finish()
				return
			case <-t.C:
				bar.Add(1)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// readValue reads a put's value: the argument, standard input ("-") or
// --file; at most api.MaxBody bytes.
func readValue(arg *string, file string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	switch {
	case file != "" && arg != nil:
		return nil, errors.New("give VALUE or -file, not both")
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("-file: %w", err)
		}
		defer fh.Close()
		r = fh
	case arg == nil:
		return nil, errors.New("missing VALUE (or - for standard input, or -file F)")
	case *arg == "-":
		r = stdin
	default:
		return []byte(*arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, api.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > api.MaxBody {
		return nil, fmt.Errorf("the value is over %d bytes", api.MaxBody)
	}
	return b, nil
}

// idFlag is a flag holding an ID in hex; unset is the zero ID.
type idFlag struct{ v id.ID }

func (f *idFlag) String() string {
	if f.v.IsZero() {
		return ""
	}
	return f.v.String()
}

func (f *idFlag) Set(s string) error {
	v, err := api.ParseID(s)
	if err != nil {
		return errors.New("must be " + strconv.Itoa(2*id.Len) + " hex digits")
	}
	f.v = v
	return nil
}
