// Package node is the daemon wiring behind the dht command: the networks
// file, the daemon's settings (flags, environment, config file), its data
// directory, the long-lived node that Run keeps joined and reports on, and
// the short-lived client nodes that put and get values for one command.
package node

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/dhtkit/dht"
)

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
	return n.Put(ctx, dht.Key(key), value, dht.WithTTL(ttl))
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
