package main

// Human-readable output. Scripts use --json.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dhtkit/dht/api"
)

// printable returns a value as one line that is safe on a terminal: the
// value itself when it is printable text on one line, else a Go-quoted
// string with escapes (\n, \x00, \u202e...). A value that starts with a
// double quote is quoted too, so that a line starting with one is always a
// quoted value.
func printable(b []byte) string {
	if len(b) > 0 && b[0] != '"' && utf8.Valid(b) {
		safe := true
		for _, r := range string(b) {
			if !unicode.IsPrint(r) || unicode.Is(unicode.Bidi_Control, r) {
				safe = false
				break
			}
		}
		if safe {
			return string(b)
		}
	}
	return strconv.Quote(string(b))
}

// short formats a duration for people: 1.5ms, 3.2s, 20m, 1h30m.
func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") { // 20m0s: 20m
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") { // 1h0m: 1h
		s = s[:len(s)-2]
	}
	return s
}

func printStatus(w io.Writer, i api.Info, where string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	yes := map[bool]string{true: "yes", false: "not yet"}
	fmt.Fprintf(tw, "node\t%s\t(%s)\n", i.ID, where)
	fmt.Fprintf(tw, "version\t%s\n", i.Version)
	network := fmt.Sprintf("id %d", i.Network.ID)
	if i.Network.Name != "" {
		network = fmt.Sprintf("%s (id %d)", i.Network.Name, i.Network.ID)
	}
	fmt.Fprintf(tw, "network\t%s\n", network)
	addrs := make([]string, len(i.Addrs))
	for j, a := range i.Addrs {
		addrs[j] = a.String()
	}
	fmt.Fprintf(tw, "addresses\t%s\n", strings.Join(addrs, ", "))
	fmt.Fprintf(tw, "uptime\t%s\n", short(i.Uptime))
	fmt.Fprintf(tw, "joined\t%s\n", yes[i.Joined])
	if i.ReadOnly {
		fmt.Fprintf(tw, "mode\tread-only client\n")
	}
	fmt.Fprintf(tw, "contacts\t%d\n", i.Contacts)
	fmt.Fprintf(tw, "stored\t%d record(s), %d byte(s)\n", i.Records, i.Bytes)
	for j, s := range i.Seeds {
		label := ""
		if j == 0 {
			label = "seeds"
		}
		line := s.Addr + "\t" + s.State
		if s.LastError != "" {
			line += ": " + s.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, line)
	}
	tw.Flush()
}

// printTable draws the routing table as the Kademlia lookup table: one row
// per distance range, farthest first, runs of empty ranges on one row.
func printTable(w io.Writer, t api.Table) {
	n := 0
	byIndex := map[int]api.Bucket{}
	lowest := 160
	for _, b := range t.Buckets {
		byIndex[b.Index] = b
		n += len(b.Contacts)
		if len(b.Contacts) > 0 || b.Replacements > 0 || b.LookedUp {
			lowest = min(lowest, b.Index)
		}
	}
	fmt.Fprintf(w, "routing table of %s: %d contact(s), k = %d\n", t.Self, n, t.K)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DISTANCE\tCONTACTS\tLAST SEEN\tLOOKED UP\tNOTES")
	emptyFrom := -1 // the top of a run of empty rows
	flush := func(bottom int) {
		if emptyFrom >= 0 {
			fmt.Fprintf(tw, "%s\t0/%d\t-\tnever\t\n", distance(bottom, emptyFrom), t.K)
			emptyFrom = -1
		}
	}
	for i := 159; i >= 0 && i >= lowest; i-- {
		b, ok := byIndex[i]
		if !ok || (len(b.Contacts) == 0 && b.Replacements == 0 && !b.LookedUp) {
			if emptyFrom < 0 {
				emptyFrom = i
			}
			continue
		}
		flush(i + 1)
		k := b.K
		if k == 0 {
			k = t.K
		}
		seen := "-"
		var notes []string
		if len(b.Contacts) > 0 {
			lo, hi := b.Contacts[0].LastSeen, b.Contacts[0].LastSeen
			failing, unverified := 0, 0
			for _, c := range b.Contacts {
				lo, hi = min(lo, c.LastSeen), max(hi, c.LastSeen)
				if c.Failures > 0 {
					failing++
				}
				if !c.Verified {
					unverified++
				}
			}
			seen = short(lo) + " ago"
			if hi != lo {
				seen = short(lo) + ".." + short(hi) + " ago"
			}
			if failing > 0 {
				notes = append(notes, fmt.Sprintf("%d failing", failing))
			}
			if unverified > 0 {
				notes = append(notes, fmt.Sprintf("%d unverified", unverified))
			}
		}
		if b.Replacements > 0 {
			notes = append(notes, fmt.Sprintf("%d waiting", b.Replacements))
		}
		looked := "never"
		if b.LookedUp {
			looked = short(b.LookupAge) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\n", distance(i, i), len(b.Contacts), k, seen, looked, strings.Join(notes, ", "))
	}
	flush(lowest)
	if lowest > 0 && lowest < 160 {
		fmt.Fprintf(tw, "%s\t0/%d\t-\tnever\t(closer ranges are empty, as expected)\n", distance(0, lowest-1), t.K)
	}
	tw.Flush()
}

// distance names the ranges from 2^lo to 2^(hi+1).
func distance(lo, hi int) string {
	return fmt.Sprintf("2^%d..2^%d", lo, hi+1)
}

func printKeys(w io.Writer, keys []api.KeyInfo) {
	if len(keys) == 0 {
		fmt.Fprintln(w, "no keys stored")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "KEY\tRECORDS\tBYTES\tPUBLISHERS\tEXPIRES IN\t")
	for _, k := range keys {
		exp := short(k.EarliestExpiry)
		if k.LatestExpiry != k.EarliestExpiry {
			exp += ".." + short(k.LatestExpiry)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t\n", k.Key, k.Records, k.Bytes, k.Publishers, exp)
	}
	tw.Flush()
}

// printReceipts prints "stored on 17 of 20 (3 no answer)", the refusals
// and, when it differs from what was asked, the TTL granted.
func printReceipts(w io.Writer, verb string, rs []api.Receipt, asked time.Duration) {
	var accepted, refused, silent int
	var lo, hi time.Duration
	for _, r := range rs {
		switch r.Outcome {
		case api.Accepted:
			if accepted == 0 {
				lo, hi = r.TTL, r.TTL
			}
			lo, hi = min(lo, r.TTL), max(hi, r.TTL)
			accepted++
		case api.Refused:
			refused++
		default:
			silent++
		}
	}
	var parts []string
	if silent > 0 {
		parts = append(parts, fmt.Sprintf("%d no answer", silent))
	}
	if refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", refused))
	}
	line := fmt.Sprintf("%s %d of %d", verb, accepted, len(rs))
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	fmt.Fprintln(w, line)
	for _, r := range rs {
		if r.Outcome == api.Refused {
			fmt.Fprintf(w, "refused by %s: %s\n", r.Node.Addr, printable([]byte(r.Reason)))
		}
	}
	if accepted > 0 && asked > 0 && (lo != asked || hi != asked) {
		granted := lo.String()
		if hi != lo {
			granted = lo.String() + " to " + hi.String()
		}
		fmt.Fprintf(w, "granted TTL %s (asked %s)\n", granted, asked)
	}
}

func printLookup(w io.Writer, r api.LookupResult, trace bool) {
	if trace {
		if len(r.Rounds) == 0 {
			fmt.Fprintln(w, "(this node keeps no trace of its lookups)")
		}
		for i, round := range r.Rounds {
			fmt.Fprintf(w, "round %d: %d node(s) asked\n", i+1, len(round.Queries))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, q := range round.Queries {
				answer := string(q.Answer)
				switch q.Answer {
				case api.AnswerContacts:
					answer = fmt.Sprintf("%d contact(s)", len(q.Contacts))
				case api.AnswerValues:
					answer = fmt.Sprintf("%d value(s)", q.Values)
				case api.AnswerError:
					answer = "error: " + printable([]byte(q.Error))
				}
				fmt.Fprintf(tw, "  %s\t%s\tat +%s\ttook %s\t%s\n", q.Node.ID.Short(), q.Node.Addr, short(q.Start), short(q.Duration), answer)
			}
			tw.Flush()
		}
		fmt.Fprintf(w, "%s lookup of %s in %s\n", r.Kind, r.Target, short(r.Duration))
	}
	if r.Kind == api.LookupValue {
		for _, v := range r.Values {
			fmt.Fprintln(w, printable(v.Data))
		}
		return
	}
	for _, c := range r.Closest {
		fmt.Fprintf(w, "%s %s\n", c.ID, c.Addr)
	}
}

func printEvent(w io.Writer, ev api.ValueEvent) {
	v := ev.Value
	if ev.Kind == api.EventDelete {
		fmt.Fprintf(w, "%s\tpublisher %s\tversion %d\n", ev.Kind, v.Publisher.Short(), v.Version)
		return
	}
	fmt.Fprintf(w, "%s\tpublisher %s\tversion %d\tttl %s\t%s\n", ev.Kind, v.Publisher.Short(), v.Version, short(v.TTL), printable(v.Data))
}
