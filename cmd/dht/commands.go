package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/client"
	"github.com/dhtkit/dht/id"
)

// stdin is where put reads a value given as "-"; tests replace it.
var stdin io.Reader = os.Stdin

// connect parses the command line and finds the node; the returned
// function releases both.
func (f *cliFlags) connect(args []string, forever bool, want ...int) (context.Context, *target, func(), int, bool) {
	if code, ok := f.parse(args, want...); !ok {
		return nil, nil, nil, code, false
	}
	ctx, cancel := f.context(forever)
	t, code, ok := f.backend(ctx)
	if !ok {
		cancel()
		return nil, nil, nil, code, false
	}
	return ctx, t, func() { t.close(); cancel() }, 0, true
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	f := newCLI("status", stdout, stderr, false)
	ctx, t, done, code, ok := f.connect(args, false, 0)
	if !ok {
		return code
	}
	defer done()
	info, err := t.Info(ctx)
	if err != nil {
		return f.fail(err)
	}
	if f.json {
		f.printJSON(info)
		return exitOK
	}
	printStatus(stdout, info, t.where)
	return exitOK
}

func runTable(args []string, stdout, stderr io.Writer) int {
	f := newCLI("table", stdout, stderr, false)
	ctx, t, done, code, ok := f.connect(args, false, 0)
	if !ok {
		return code
	}
	defer done()
	tab, err := t.Table(ctx)
	if err != nil {
		return f.fail(err)
	}
	if f.json {
		f.printJSON(tab)
		return exitOK
	}
	printTable(stdout, tab)
	return exitOK
}

func runKeys(args []string, stdout, stderr io.Writer) int {
	f := newCLI("keys", stdout, stderr, false)
	limit := intRange{v: api.DefaultPage, min: 1, max: api.MaxLimit}
	f.fs.Var(&limit, "limit", fmt.Sprintf("list at most `N` keys, 1 to %d", api.MaxLimit))
	var after idFlag
	f.fs.Var(&after, "after", "list the keys after this `ID` (the last one of the previous page)")
	all := f.fs.Bool("all", false, "list every key, page after page")
	ctx, t, done, code, ok := f.connect(args, false, 0)
	if !ok {
		return code
	}
	defer done()
	q := api.KeysQuery{Limit: limit.v}
	if !after.v.IsZero() {
		q.After = &after.v
	}
	var keys []api.KeyInfo
	for {
		p, err := t.Keys(ctx, q)
		if err != nil {
			return f.fail(err)
		}
		keys = append(keys, p.Keys...)
		if !p.More || len(p.Keys) == 0 {
			break
		}
		last := p.Keys[len(p.Keys)-1].Key
		if !*all {
			if !f.json {
				defer fmt.Fprintf(stderr, "more keys follow: dht keys -after %s\n", last)
			}
			break
		}
		q.After = &last
	}
	if f.json {
		f.printJSON(api.KeysPage{Keys: keys})
		return exitOK
	}
	printKeys(stdout, keys)
	return exitOK
}

func runPing(args []string, stdout, stderr io.Writer) int {
	f := newCLI("ping", stdout, stderr, false)
	ctx, t, done, code, ok := f.connect(args, false, 1)
	if !ok {
		return code
	}
	defer done()
	addr := f.fs.Arg(0)
	if err := checkHostPort(addr); err != nil {
		return f.usage("%v", err)
	}
	stop := f.progress("pinging " + addr + "…")
	res, err := t.Ping(ctx, addr)
	stop()
	if err != nil {
		return f.fail(err)
	}
	if f.json {
		f.printJSON(res)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s answered from %s in %s\n", res.Contact.ID, res.Contact.Addr, short(res.RTT))
	return exitOK
}

func runLookup(args []string, stdout, stderr io.Writer) int {
	f := newCLI("lookup", stdout, stderr, true)
	trace := f.fs.Bool("trace", false, "print how the lookup went: each round, the nodes asked, how long each took and what it answered")
	kind := f.fs.String("type", "node", typeUsage)
	if code, ok := f.parse(args, 1); !ok {
		return code
	}
	if *kind != string(api.LookupNode) && *kind != string(api.LookupValue) {
		return f.usage("invalid value %q for flag -type: must be node or value", trimArg(*kind))
	}
	key, ok := f.key(f.fs.Arg(0))
	if !ok {
		return exitUsage
	}
	ctx, cancel := f.context(false)
	defer cancel()
	t, code, ok := f.backend(ctx)
	if !ok {
		return code
	}
	defer t.close()
	stop := f.progress("looking up " + key.Short() + "…")
	res, err := t.Lookup(ctx, key, api.LookupKind(*kind))
	stop()
	if f.json && (err == nil || len(res.Rounds) > 0) {
		f.printJSON(res)
	} else if !f.json && (err == nil || *trace) {
		printLookup(stdout, res, *trace)
	}
	if err != nil {
		return f.fail(err)
	}
	return exitOK
}

func runPut(args []string, stdout, stderr io.Writer) int {
	f := newCLI("put", stdout, stderr, true)
	var ttl positiveDuration
	f.fs.Var(&ttl, "ttl", "`DURATION` nodes should keep the value (default the node's, 1h; each node caps it at its maximum, 24h by default)")
	quorum := intRange{v: 0, min: 0, max: 1000}
	f.fs.Var(&quorum, "quorum", "fail (exit 3) unless at least `N` nodes accept the value")
	var pub idFlag
	f.fs.Var(&pub, "publisher", publisherUsage)
	file := f.fs.String("file", "", "read the value from `FILE` instead of the VALUE argument")
	keep := f.fs.Bool("keep", false, "the running node republishes the value before it expires, until dht del (and across its restarts); a failed put is retried")
	var rf recordFlags
	rf.register(f, "put")
	if code, ok := f.parse(args); !ok {
		return code
	}
	mode, ok := rf.mode(f, "put")
	if !ok {
		return exitUsage
	}
	if mode != "" {
		return putRecord(f, &rf, mode, *file, ttl.v, quorum.v)
	}
	if !f.nargs(1, 2, "KEY VALUE|-") {
		return exitUsage
	}
	var arg *string
	if f.fs.NArg() == 2 {
		v := f.fs.Arg(1)
		arg = &v
	}
	value, err := readValue(arg, *file, stdin)
	if err != nil {
		return f.usage("%v", err)
	}
	key, ok := f.key(f.fs.Arg(0))
	if !ok {
		return exitUsage
	}
	ctx, cancel := f.context(false)
	defer cancel()
	t, code, ok := f.backend(ctx)
	if !ok {
		return code
	}
	t.Backend = keepPuts{t.Backend, *keep} // --keep (keep.go)
	defer t.close()
	what := "storing…"
	if quorum.v > 0 {
		what = fmt.Sprintf("storing, waiting for %d node(s) to accept…", quorum.v)
	}
	stop := f.progress(what)
	res, err := t.Put(ctx, key, value, api.PutOptions{TTL: ttl.v, Quorum: quorum.v, Publisher: pub.v})
	stop()
	if err != nil && *keep && !errors.Is(err, api.ErrBadRequest) {
		fmt.Fprintf(stderr, "%s: the node keeps the value alive and retries the put with backoff; dht del stops it\n", f.fs.Name())
	}
	if err != nil && !errors.Is(err, api.ErrQuorum) {
		return f.fail(err)
	}
	if f.json {
		f.printJSON(res)
	} else {
		printReceipts(stdout, "stored on", res.Receipts, res.Asked)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: quorum not reached: %d node(s) accepted the value, -quorum is %d\n", f.fs.Name(), res.Stored, quorum.v)
		return exitNetwork
	}
	return exitOK
}

func runGet(args []string, stdout, stderr io.Writer) int {
	f := newCLI("get", stdout, stderr, true)
	raw := f.fs.Bool("raw", false, "write the newest value's bytes as they are, and nothing else (for binary values: dht get -raw KEY > FILE)")
	var rf recordFlags
	rf.register(f, "get")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *raw && f.json {
		return f.usage("give -raw or -json, not both")
	}
	mode, ok := rf.mode(f, "get")
	if !ok {
		return exitUsage
	}
	if mode != "" {
		return getRecord(f, &rf, mode, *raw)
	}
	if !f.nargs(1, 1, "KEY") {
		return exitUsage
	}
	key, ok := f.key(f.fs.Arg(0))
	if !ok {
		return exitUsage
	}
	return f.withNode(func(ctx context.Context, t *target) int { return f.printValues(ctx, t, key, *raw) })
}

// withNode finds the node to talk to and runs do with it, within the
// command's -timeout.
func (f *cliFlags) withNode(do func(ctx context.Context, t *target) int) int {
	ctx, cancel := f.context(false)
	defer cancel()
	t, code, ok := f.backend(ctx)
	if !ok {
		return code
	}
	defer t.close()
	return do(ctx, t)
}

// get gets key's values, with a spinner while it waits.
func (f *cliFlags) get(ctx context.Context, t *target, key id.ID) (api.GetResult, error) {
	stop := f.progress("getting " + key.Short() + "…")
	defer stop()
	return t.Get(ctx, key)
}

// printValues is dht get of a plain KEY.
func (f *cliFlags) printValues(ctx context.Context, t *target, key id.ID, raw bool) int {
	stdout, stderr := f.stdout, f.stderr
	res, err := f.get(ctx, t, key)
	if errors.Is(err, api.ErrNotFound) && !errors.Is(err, api.ErrNoPeers) {
		fmt.Fprintln(stderr, "not found")
		return exitNotFound
	}
	if err != nil {
		return f.fail(err)
	}
	if res.Incomplete != "" {
		fmt.Fprintf(stderr, "%s: the answer may be incomplete: %s\n", f.fs.Name(), res.Incomplete)
	}
	switch {
	case f.json:
		f.printJSON(res)
	case raw:
		if len(res.Values) > 0 {
			stdout.Write(res.Values[0].Data)
		}
		if len(res.Values) > 1 {
			fmt.Fprintf(stderr, "%s: %d older value(s) not written (see -json)\n", f.fs.Name(), len(res.Values)-1)
		}
	default:
		for _, v := range res.Values {
			fmt.Fprintln(stdout, printable(v.Data))
		}
	}
	return exitOK
}

func runDel(args []string, stdout, stderr io.Writer) int {
	f := newCLI("del", stdout, stderr, true)
	var pub idFlag
	f.fs.Var(&pub, "publisher", publisherUsage)
	var rf recordFlags
	rf.register(f, "del")
	if code, ok := f.parse(args); !ok {
		return code
	}
	mode, ok := rf.mode(f, "del")
	if !ok {
		return exitUsage
	}
	if mode != "" {
		return delRecord(f, &rf, mode)
	}
	if !f.nargs(1, 1, "KEY") {
		return exitUsage
	}
	key, ok := f.key(f.fs.Arg(0))
	if !ok {
		return exitUsage
	}
	ctx, cancel := f.context(false)
	defer cancel()
	t, code, ok := f.backend(ctx)
	if !ok {
		return code
	}
	defer t.close()
	stop := f.progress("withdrawing…")
	res, err := t.Delete(ctx, key, api.PutOptions{Publisher: pub.v})
	stop()
	if f.json && (err == nil || len(res.Receipts) > 0) {
		f.printJSON(res)
	}
	if errors.Is(err, api.ErrNotFound) {
		fmt.Fprintf(stderr, "%s: no node held a value of this publisher under the key\n", f.fs.Name())
		return exitNotFound
	}
	if err != nil {
		return f.fail(err)
	}
	if !f.json {
		printReceipts(stdout, "withdrawn from", res.Receipts, 0)
	}
	return exitOK
}

func runListen(args []string, stdout, stderr io.Writer) int {
	f := newCLI("listen", stdout, stderr, true)
	f.timeout = positiveDuration{} // listen until interrupted
	f.fs.Lookup("timeout").DefValue = f.timeout.String()
	if code, ok := f.parse(args, 1); !ok {
		return code
	}
	key, ok := f.key(f.fs.Arg(0))
	if !ok {
		return exitUsage
	}
	ctx, cancel := f.context(f.timeout.v == 0)
	defer cancel()
	t, code, ok := f.backend(ctx)
	if !ok {
		return code
	}
	defer t.close()
	print := func(ev api.ValueEvent) {
		if f.json {
			b, _ := ev.MarshalJSON()
			stdout.Write(append(b, '\n')) // one event per line
			return
		}
		printEvent(stdout, ev)
	}
	if t.c == nil {
		ch, err := t.Listen(ctx, key)
		if err != nil {
			return f.fail(err)
		}
		for ev := range ch {
			print(ev)
		}
		return exitOK
	}
	s, err := t.c.ListenStream(ctx, key)
	if err != nil {
		return f.fail(err)
	}
	defer s.Close()
	if !f.json {
		fmt.Fprintf(stderr, "listening to %s at %s (Ctrl-C to stop)\n", key.Short(), t.where)
	}
	var reported uint64
	for {
		ev, err := s.Next()
		if d := s.Dropped(); d > reported {
			fmt.Fprintf(stderr, "%s: %d event(s) missed: this listener read too slowly\n", f.fs.Name(), d-reported)
			reported = d
		}
		switch {
		case err == nil:
			print(ev)
			continue
		case ctx.Err() != nil:
			return exitOK // interrupted, or -timeout: what was asked
		case errors.Is(err, io.EOF):
			fmt.Fprintf(stderr, "%s: the node ended the stream (it is stopping)\n", f.fs.Name())
		case errors.Is(err, client.ErrBroken):
			fmt.Fprintf(stderr, "%s: the connection to the node broke\n", f.fs.Name())
		default:
			fmt.Fprintf(stderr, "%s: %v\n", f.fs.Name(), err)
		}
		return exitNetwork
	}
}

// version is the program's version: the module's, or "devel" with the
// commit it was built from when it was built from a checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "-" + s.Value[:12]
			}
		}
	}
	return v
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	asJSON := fs.Bool("json", false, jsonUsage)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	if *asJSON {
		f := &cliFlags{stdout: stdout, stderr: stderr, fs: fs}
		f.printJSON(map[string]string{"version": version(), "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
		return exitOK
	}
	fmt.Fprintf(stdout, "dht %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
