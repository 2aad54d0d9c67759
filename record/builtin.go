package record

import (
	"sync"
	"time"
)

// The built-in types (docs/records.md is their catalogue, with an example
// document of each). All are typed records: signed, and keyed by their name.
var builtinTypes = []Type{
	{
		// identity: a user's identity document, keyed by its own URL, so
		// that whoever knows the URL finds it. public_key binds the
		// document to the key that signs it.
		Name:     "identity",
		NameRule: "{url}",
		Revision: true,
		MaxSize:  16 << 10,
		Fields: []Field{
			{Name: "url", Format: URL, Required: true},
			{Name: "public_key", Format: PublicKey, Required: true},
			{Name: "revision", Format: Decimal, Required: true},
			{Name: "sources", Format: URL, List: true, Required: true, MinItems: 1, MaxItems: 8},
			{Name: "contacts", Format: Text, List: true, MaxItems: 16},
			{Name: "name", Format: Text, MaxLen: 64},
		},
	},
	{
		// address: where a user accepts connections now. Addresses change
		// with networks, so the record lives at most an hour.
		Name:     "address",
		NameRule: "{user}@{server}:address",
		MaxTTL:   time.Hour,
		MaxSize:  4 << 10,
		Fields: []Field{
			{Name: "user", Format: Token, Required: true, MaxLen: 64},
			{Name: "server", Format: Host, Required: true, MaxLen: 253},
			{Name: "addresses", Format: HostPort, List: true, Required: true, MinItems: 1, MaxItems: 16, MaxLen: 64},
		},
	},
	{
		// incoming: who is trying to connect to a user now. Each caller
		// puts its own record (its own publisher) under the user's key, so
		// the key holds many values, each short-lived.
		Name:     "incoming",
		NameRule: "{user}@{server}:incoming",
		MaxTTL:   5 * time.Minute,
		MaxSize:  2 << 10,
		Fields: []Field{
			{Name: "user", Format: Token, Required: true, MaxLen: 64},
			{Name: "server", Format: Host, Required: true, MaxLen: 253},
			{Name: "caller", Format: URL, Required: true},
			{Name: "addresses", Format: HostPort, List: true, Required: true, MinItems: 1, MaxItems: 8, MaxLen: 64},
		},
	},
	{
		// suppliers: a customer's list of suppliers, with a revision so
		// that an old list cannot replace a newer one of the same owner.
		Name:     "suppliers",
		NameRule: "suppliers:{customer}",
		Revision: true,
		MaxSize:  48 << 10,
		Fields: []Field{
			{Name: "customer", Format: URL, Required: true},
			{Name: "revision", Format: Decimal, Required: true},
			{Name: "suppliers", Format: URL, List: true, Required: true, MinItems: 1, MaxItems: 64, MaxLen: 512},
			{Name: "ecc_map", Format: Token, MaxLen: 32},
		},
	},
	{
		// relation: one customer-supplier relation, named by the supplier's
		// position (index), a namespace prefix and the relation scheme's
		// version.
		Name:     "relation",
		NameRule: "customer_supplier:{index}:{prefix}:{version}",
		MaxSize:  4 << 10,
		Fields: []Field{
			{Name: "index", Format: Decimal, Required: true, Max: 1023},
			{Name: "prefix", Format: Token, Required: true, MaxLen: 64},
			{Name: "version", Format: Decimal, Required: true, Max: 1 << 32},
			{Name: "customer", Format: URL, Required: true},
			{Name: "supplier", Format: URL, Required: true},
		},
	},
	{
		// nickname: a claim of a short name for an identity. Anyone may
		// claim any name (each under its own publisher); readers decide
		// whose claim they trust.
		Name:     "nickname",
		NameRule: "nickname:{nickname}",
		MaxSize:  2 << 10,
		Fields: []Field{
			{Name: "nickname", Format: Token, Required: true, MaxLen: 64},
			{Name: "owner", Format: URL, Required: true},
		},
	},
}

// Builtin returns a new registry holding the built-in types: identity,
// address, incoming, suppliers, relation and nickname. Each call returns a
// fresh registry, so a program may Register its own types on it.
func Builtin() *Registry {
	r := NewRegistry()
	for _, t := range builtinTypes {
		if err := r.Register(t); err != nil {
			panic(err) // the built-in table is static; TestBuiltin covers it
		}
	}
	return r
}

var (
	builtinOnce sync.Once
	builtinReg  *Registry
)

// builtin is the shared registry a Policy without Types uses; nobody
// registers into it.
func builtin() *Registry {
	builtinOnce.Do(func() { builtinReg = Builtin() })
	return builtinReg
}
