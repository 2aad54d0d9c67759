package main

import (
	"context"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
)

// keepPuts asks each put for a keep-alive when keep is set (`dht put
// --keep`): the running node republishes the value until `dht del`.
type keepPuts struct {
	api.Backend
	keep bool
}

func (k keepPuts) Put(ctx context.Context, key id.ID, value []byte, o api.PutOptions) (api.PutResult, error) {
	o.Keep = o.Keep || k.keep
	return k.Backend.Put(ctx, key, value, o)
}
