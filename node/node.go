// Package node is the daemon wiring behind the dht command: it runs a
// long-lived node (joining, rejoining when its seeds were down, reporting
// what it does), and the short-lived client nodes that put and get values
// for one command.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/dhtkit/dht"
)

// Run starts a node with cfg, joins the network through seeds (retrying with
// backoff while none answers: a daemon started before its seeds should not
// give up), prints its ID and address to out, and serves until ctx is done.
// The seeds also go into cfg.Seeds, so that a node that loses every contact
// later (its network was down for hours) rejoins through them by itself.
func Run(ctx context.Context, cfg dht.Config, seeds []string, out io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = log
	if !cfg.ReadOnly {
		cfg.Seeds = append(cfg.Seeds[:len(cfg.Seeds):len(cfg.Seeds)], seedAddrs(ctx, seeds, log)...)
	}
	n, err := dht.New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Fprintf(out, "id %s\nlistening on %s\n", n.ID(), n.Addr())
	if len(seeds) == 0 {
		fmt.Fprintln(out, "no seeds: this node starts a new network")
	} else {
		go join(ctx, n, seeds, out, log)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return n.Close()
}

// join bootstraps n, retrying with exponential backoff (1s to 1m) until a
// seed answers or ctx ends. Later outages are the core's to recover from,
// through Config.Seeds.
func join(ctx context.Context, n *dht.Node, seeds []string, out io.Writer, log *slog.Logger) {
	backoff := time.Second
	for {
		start := time.Now()
		err := n.Bootstrap(ctx, seeds...)
		if err == nil {
			fmt.Fprintf(out, "joined through %d seed(s) in %v: %d contacts\n", len(seeds), time.Since(start).Round(time.Millisecond), len(n.Contacts()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("bootstrap failed; retrying", "err", err, "in", backoff)
		fmt.Fprintf(out, "bootstrap failed (%v); retrying in %v\n", err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// seedResolveTimeout bounds the start-up lookup of seed host names, so that a
// daemon started while DNS is down still starts (and joins once Bootstrap,
// which resolves the names again on every try, gets an answer).
const seedResolveTimeout = 5 * time.Second

// seedAddrs returns the addresses of seeds for Config.Seeds, the core's
// rejoin list: literal addresses as they are, host names resolved once now.
// A name that does not resolve is logged and left out of rejoining only.
func seedAddrs(ctx context.Context, seeds []string, log *slog.Logger) []netip.AddrPort {
	var out []netip.AddrPort
	add := func(s string, a netip.AddrPort) {
		ip := a.Addr().Unmap()
		if a.Port() == 0 || ip.IsUnspecified() || ip.IsMulticast() {
			log.Warn("seed is no node's address: the node will not rejoin through it", "seed", s)
			return
		}
		out = append(out, netip.AddrPortFrom(ip, a.Port()))
	}
	for _, s := range seeds {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			add(s, ap)
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			continue // Bootstrap reports it
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, seedResolveTimeout)
		ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			log.Warn("seed name not resolved: the node will not rejoin through it if it loses every contact", "seed", s, "err", err)
			continue
		}
		for _, ip := range ips {
			add(s, netip.AddrPortFrom(ip, uint16(p)))
		}
	}
	return out
}

// ClientConfig is the configuration of a short-lived read-only node that asks
// the network through seeds. It listens on an IPv4 wildcard socket, plus an
// IPv6 one when a seed is IPv6.
func ClientConfig(seeds []string, network uint32) dht.Config {
	cfg := dht.DefaultConfig()
	cfg.ReadOnly = true
	cfg.NetworkID = network
	for _, s := range seeds {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
			cfg.Listen = append(cfg.Listen, "[::]:0")
			break
		}
	}
	return cfg
}

// Client starts a read-only node and joins through seeds.
func Client(ctx context.Context, cfg dht.Config, seeds []string) (*dht.Node, error) {
	n, err := dht.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Bootstrap(ctx, seeds...); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Put stores value under the string key through a client node and says
// which nodes accepted it.
func Put(ctx context.Context, cfg dht.Config, seeds []string, key string, value []byte, ttl time.Duration) (dht.PutResult, error) {
	n, err := Client(ctx, cfg, seeds)
	if err != nil {
		return dht.PutResult{}, err
	}
	defer n.Close()
	return n.Put(ctx, dht.Key(key), value, ttl)
}

// Get returns the values under the string key through a client node.
// The error wraps dht.ErrNotFound when the network has none.
func Get(ctx context.Context, cfg dht.Config, seeds []string, key string) (dht.GetResult, error) {
	n, err := Client(ctx, cfg, seeds)
	if err != nil {
		return dht.GetResult{}, err
	}
	defer n.Close()
	return n.Get(ctx, dht.Key(key))
}

// IsNotFound reports whether err means the network holds no value.
func IsNotFound(err error) bool { return errors.Is(err, dht.ErrNotFound) }
