package main

// The short-lived node a command runs when no node is running: the same
// api.Backend over the library as a running node's API uses, so that the
// commands print its results as they print a running node's.

import (
	"context"

	"github.com/dhtkit/dht/node"
)

// local is a short-lived client node.
type local struct {
	*node.Backend
	close func()
}

func startLocal(ctx context.Context, f *cliFlags) (*local, error) {
	cfg := node.ClientConfig(f.seeds, f.networkID.v)
	f.apply(&cfg)
	n, err := node.Client(ctx, cfg, f.seeds)
	if err != nil {
		return nil, node.APIError(err)
	}
	return &local{Backend: node.NewBackend(n, node.BackendOptions{Version: version()}), close: func() { n.Close() }}, nil
}

func (l *local) Close() { l.close() }
