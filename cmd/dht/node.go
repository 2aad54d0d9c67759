package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/metrics"
	"github.com/dhtkit/dht/node"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
	"github.com/dhtkit/dht/web"
)

// nodeHooks plugs the HTTP API and the persistent store into the daemon.
var nodeHooks = node.Hooks{
	// The HTTP API (and what mounts on it) over the daemon's node.
	Handler: func(s *node.Service) http.Handler {
		b := node.NewBackend(s.Node, node.BackendOptions{
			Status:  s.Status,
			Network: api.Network{Name: s.Config.Network.Name, ID: s.Config.Node.NetworkID},
			Version: version(),
			PutTTL:  s.Config.PutTTL,
		})
		stats := metrics.Handler(metrics.NewCollector(s.Node.Stats))
		return api.New(b, api.Options{Token: s.Token, RequireAuthForReads: s.Public, Logger: s.Logger,
			Mux: func(m *http.ServeMux) {
				m.Handle("GET /metrics", stats)
				web.Mount(m) // the dashboard at /
			}})
	},
	// A node with a data directory keeps its values in it (bbolt), so
	// that a restart, or kill -9, loses no acknowledged value.
	OpenStore: func(path string, l store.Limits) (store.Store, error) {
		return bolt.Open(path, l, bolt.Options{})
	},
}

// runNode runs `dht node`: package node reads the settings (flags, DHT_*
// variables, the config file, the network) and runs the daemon.
func runNode(args []string, stdout, stderr io.Writer) int {
	return runNodeEnv(args, os.Getenv, stdout, stderr)
}

func runNodeEnv(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	l, err := node.LoadConfig(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "dht node: %s\nRun 'dht node --help' for usage.\n", err)
		return exitFailure
	}
	if l.Help {
		node.Usage(stderr)
		return exitOK
	}
	if l.PrintConfig {
		if err := l.WriteConfig(stdout); err != nil {
			return exitFailure
		}
		return exitOK
	}
	cfg := l.Config
	cfg.Logger = node.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	cfg.Out = stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.Run(ctx, cfg, nodeHooks); err != nil {
		fmt.Fprintf(stderr, "dht node: %s\n", strings.TrimPrefix(err.Error(), "dht: "))
		return exitFailure
	}
	return exitOK
}
