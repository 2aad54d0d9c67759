package record

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var pub1Hex = hex.EncodeToString(pub1)

// examples are a valid document of each built-in type with its name; the
// same documents appear in docs/records.md.
func examples() map[string][2]string {
	return map[string][2]string{
		"identity":  {"https://id.example.org/alice.xml", `{"type":"identity","url":"https://id.example.org/alice.xml","public_key":"` + pub1Hex + `","revision":7,"sources":["https://id.example.org/alice.xml","https://backup.example.net/alice.xml"],"contacts":["tcp://203.0.113.7:7229"],"name":"Alice"}`},
		"address":   {"alice@id.example.org:address", `{"type":"address","user":"alice","server":"id.example.org","addresses":["203.0.113.7:4000","[2001:db8::7]:4000"]}`},
		"incoming":  {"alice@id.example.org:incoming", `{"type":"incoming","user":"alice","server":"id.example.org","caller":"https://id.example.net/bob.xml","addresses":["198.51.100.2:5000"]}`},
		"suppliers": {"suppliers:https://id.example.org/alice.xml", `{"type":"suppliers","customer":"https://id.example.org/alice.xml","revision":3,"suppliers":["https://id.example.com/s1.xml","https://id.example.com/s2.xml"],"ecc_map":"ecc-2x2"}`},
		"relation":  {"customer_supplier:0:alice:1", `{"type":"relation","index":0,"prefix":"alice","version":1,"customer":"https://id.example.org/alice.xml","supplier":"https://id.example.com/s1.xml"}`},
		"nickname":  {"nickname:alice", `{"type":"nickname","nickname":"alice","owner":"https://id.example.org/alice.xml"}`},
	}
}

func TestBuiltinExamplesAccepted(t *testing.T) {
	var p Policy
	if got := Builtin().Names(); strings.Join(got, ",") != "address,identity,incoming,nickname,relation,suppliers" {
		t.Fatalf("Builtin() has %v", got)
	}
	for typ, ex := range examples() {
		k, pubID, d := mustTyped(t, priv1, ex[0], 1, ex[1])
		v, err := p.Check(k, pubID, 1, true, d, nil)
		if err != nil {
			t.Fatalf("%s: example refused: %v", typ, err)
		}
		bt, _ := Builtin().Lookup(typ)
		if v.Kind != Typed || v.MinTTL != bt.MinTTL || v.MaxTTL != bt.MaxTTL {
			t.Fatalf("%s: verdict %+v", typ, v)
		}
		if _, err := p.Verify(k, pubID, 1, d); err != nil {
			t.Fatalf("%s: Verify: %v", typ, err)
		}
		if err := Builtin().CheckDocument(ex[0], pub1, []byte(ex[1])); err != nil {
			t.Fatalf("%s: CheckDocument: %v", typ, err)
		}
	}
}

// Each rule of a type, broken once: refused, with the field named.
func TestTypedRulesRefused(t *testing.T) {
	var p Policy
	addr := func(user, server, addrs string) string {
		return `{"type":"address","user":` + user + `,"server":` + server + `,"addresses":` + addrs + `}`
	}
	cases := []struct {
		name, recName, doc, field string
	}{
		{"not JSON", "n", `{"type":`, "value"},
		{"not an object", "n", `["type"]`, "value"},
		{"trailing bytes", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`) + `x`, "value"},
		{"two objects", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`) + `{}`, "value"},
		{"not UTF-8", "n", "{\"type\":\"\xff\"}", "value"},
		{"no type", "n", `{"user":"alice"}`, "type"},
		{"type not a string", "n", `{"type":1}`, "type"},
		{"unknown type", "n", `{"type":"nosuch"}`, "type"},
		{"duplicate field", "alice@a.example:address", `{"type":"address","user":"alice","user":"bob","server":"a.example","addresses":["1.2.3.4:5"]}`, "user"},
		{"unknown field", "alice@a.example:address", `{"type":"address","user":"alice","server":"a.example","addresses":["1.2.3.4:5"],"extra":1}`, "extra"},
		{"required missing", "alice@a.example:address", `{"type":"address","user":"alice","server":"a.example"}`, "addresses"},
		{"string for list", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `"1.2.3.4:5"`), "addresses"},
		{"number for string", "1@a.example:address", addr(`1`, `"a.example"`, `["1.2.3.4:5"]`), "user"},
		{"empty list", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `[]`), "addresses"},
		{"list too long", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `[`+strings.Repeat(`"1.2.3.4:5",`, 16)+`"1.2.3.4:5"]`), "addresses"},
		{"not host:port", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4"]`), "addresses"},
		{"port 0", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:0"]`), "addresses"},
		{"port 65536", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:65536"]`), "addresses"},
		{"unbracketed v6", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `["2001:db8::1:4000"]`), "addresses"},
		{"nested list", "alice@a.example:address", addr(`"alice"`, `"a.example"`, `[["1.2.3.4:5"]]`), "addresses"},
		{"user not a token", "al ice@a.example:address", addr(`"al ice"`, `"a.example"`, `["1.2.3.4:5"]`), "user"},
		{"user too long", strings.Repeat("a", 65) + "@a.example:address", addr(`"`+strings.Repeat("a", 65)+`"`, `"a.example"`, `["1.2.3.4:5"]`), "user"},
		{"server not a host", "alice@a_b:address", addr(`"alice"`, `"a_b"`, `["1.2.3.4:5"]`), "server"},
		{"name suffix", "alice@a.example:addresses", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`), "name"},
		{"name user differs", "bob@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`), "name"},
		{"name cut short", "alice@a.example", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`), "name"},
		{"name cut inside a field", "alice@a.exa", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`), "name"},
		{"numbers in a URL list", "suppliers:https://a.example/c", `{"type":"suppliers","customer":"https://a.example/c","revision":1,"suppliers":[1]}`, "suppliers"},
		{"name prefix extra", "xalice@a.example:address", addr(`"alice"`, `"a.example"`, `["1.2.3.4:5"]`), "name"},
		{"identity key not signer's", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + hex.EncodeToString(pub2) + `","revision":1,"sources":["https://a.example/x"]}`, "public_key"},
		{"identity key upper case", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + strings.ToUpper(pub1Hex) + `","revision":1,"sources":["https://a.example/x"]}`, "public_key"},
		{"identity url not http", "ftp://a.example/x", `{"type":"identity","url":"ftp://a.example/x","public_key":"` + pub1Hex + `","revision":1,"sources":["https://a.example/x"]}`, "url"},
		{"identity url with user", "https://u@a.example/x", `{"type":"identity","url":"https://u@a.example/x","public_key":"` + pub1Hex + `","revision":1,"sources":["https://a.example/x"]}`, "url"},
		{"revision negative", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":-1,"sources":["https://a.example/x"]}`, "revision"},
		{"revision fraction", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":1.5,"sources":["https://a.example/x"]}`, "revision"},
		{"revision exponent", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":1e3,"sources":["https://a.example/x"]}`, "revision"},
		{"revision string", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":"1","sources":["https://a.example/x"]}`, "revision"},
		{"revision over u64", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":18446744073709551616,"sources":["https://a.example/x"]}`, "revision"},
		{"identity name control char", "https://a.example/x", `{"type":"identity","url":"https://a.example/x","public_key":"` + pub1Hex + `","revision":1,"sources":["https://a.example/x"],"name":"a\u0007"}`, "name"},
		{"relation index over max", "customer_supplier:1024:p:1", `{"type":"relation","index":1024,"prefix":"p","version":1,"customer":"https://a.example/c","supplier":"https://a.example/s"}`, "index"},
		{"relation leading zero", "customer_supplier:01:p:1", `{"type":"relation","index":01,"prefix":"p","version":1,"customer":"https://a.example/c","supplier":"https://a.example/s"}`, "value"},
		{"relation name version", "customer_supplier:1:p:2", `{"type":"relation","index":1,"prefix":"p","version":1,"customer":"https://a.example/c","supplier":"https://a.example/s"}`, "name"},
		{"nickname owner missing", "nickname:al", `{"type":"nickname","nickname":"al"}`, "owner"},
		{"suppliers item not URL", "suppliers:https://a.example/c", `{"type":"suppliers","customer":"https://a.example/c","revision":1,"suppliers":["s1"]}`, "suppliers"},
		{"incoming doc too large", "al@a.example:incoming", `{"type":"incoming","user":"al","server":"a.example","caller":"https://a.example/` + strings.Repeat("c", 2100) + `","addresses":["1.2.3.4:5"]}`, "value"},
		{"nested too deep", "n", `{"type":"nickname","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, "value"},
		{"too many fields", "n", `{"type":"nickname"` + manyFields(70) + `}`, "value"},
		{"list too many items", "n", `{"type":"nickname","x":[` + strings.Repeat("1,", MaxItems) + `1]}`, "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, pubID, d := mustTyped(t, priv1, c.recName, 2, c.doc)
			_, err := p.Check(k, pubID, 2, true, d, nil)
			wantErr(t, err, Invalid, c.field)
			_, err = p.Verify(k, pubID, 2, d)
			wantErr(t, err, Invalid, c.field)
		})
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"f%d":1`, i)
	}
	return b.String()
}

func TestRevisionRule(t *testing.T) {
	var p Policy
	name := "https://id.example.org/alice.xml"
	doc := func(rev int) string {
		return fmt.Sprintf(`{"type":"identity","url":%q,"public_key":%q,"revision":%d,"sources":[%q]}`, name, pub1Hex, rev, name)
	}
	_, _, held5 := mustTyped(t, priv1, name, 10, doc(5))
	held := &Held{Version: 10, Envelope: true, Data: held5}
	for _, c := range []struct {
		rev     int
		version uint64
		ok      bool
	}{
		{6, 11, true},  // raised
		{5, 11, true},  // kept
		{4, 11, false}, // lowered
		{4, 10, true},  // same version: the store's ordering rule judges it
		{4, 9, true},   // older version: the store refuses it as stale, not Check
	} {
		k, pubID, d := mustTyped(t, priv1, name, c.version, doc(c.rev))
		_, err := p.Check(k, pubID, c.version, true, d, held)
		if c.ok && err != nil {
			t.Fatalf("revision %d at version %d refused: %v", c.rev, c.version, err)
		}
		if !c.ok {
			wantErr(t, err, Invalid, "revision")
		}
	}
	k, pubID, w := mustTyped(t, priv1, name, 12, "")
	if _, err := p.Check(k, pubID, 12, true, w, held); err != nil {
		t.Fatalf("withdrawal under the revision rule refused: %v", err)
	}
	// A held record that is a withdrawal or not a typed record bounds nothing.
	_, _, hw := mustTyped(t, priv1, name, 10, "")
	k, pubID, d := mustTyped(t, priv1, name, 11, doc(1))
	for _, h := range []*Held{{Version: 10, Envelope: true, Data: hw}, {Version: 10, Envelope: true, Data: []byte{9}}, {Version: 10, Data: held5}} {
		if _, err := p.Check(k, pubID, 11, true, d, h); err != nil {
			t.Fatalf("held %x...: %v", h.Data[:1], err)
		}
	}
}

func TestProgramRegisteredType(t *testing.T) {
	reg := Builtin()
	err := reg.Register(Type{
		Name:     "game-score",
		NameRule: "score:{game}:{player}",
		MinTTL:   time.Minute,
		MaxTTL:   2 * time.Hour,
		Revision: true,
		Fields: []Field{
			{Name: "game", Format: Token, Required: true},
			{Name: "player", Format: Token, Required: true},
			{Name: "revision", Format: Decimal, Required: true},
			{Name: "score", Format: Decimal, Required: true, Max: 1_000_000},
			{Name: "mode", Format: Text, Exact: "ranked"},
		},
		Check: func(name string, doc *Document) error {
			if s, _ := doc.Uint("score"); s%10 != 0 {
				return errors.New("scores are multiples of 10")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Types: reg}
	good := `{"type":"game-score","game":"chess","player":"alice","revision":1,"score":1500,"mode":"ranked"}`
	k, pubID, d := mustTyped(t, priv1, "score:chess:alice", 1, good)
	v, err := p.Check(k, pubID, 1, true, d, nil)
	if err != nil || v.MinTTL != time.Minute || v.MaxTTL != 2*time.Hour {
		t.Fatalf("Check = %+v, %v", v, err)
	}
	var builtinOnly Policy
	_, err = builtinOnly.Check(k, pubID, 1, true, d, nil)
	wantErr(t, err, Invalid, "type")
	for doc, field := range map[string]string{
		`{"type":"game-score","game":"chess","player":"alice","revision":1,"score":1500,"mode":"casual"}`: "mode",
		`{"type":"game-score","game":"chess","player":"alice","revision":1,"score":1000001}`:              "score",
		`{"type":"game-score","game":"chess","player":"alice","revision":1,"score":1501}`:                 "value",
		`{"type":"game-score","game":"chess","player":"bob","revision":1,"score":1500}`:                   "name",
		`{"type":"game-score","game":"chess","player":"alice","score":1500}`:                              "revision",
	} {
		k, pubID, d := mustTyped(t, priv1, "score:chess:alice", 1, doc)
		_, err := p.Check(k, pubID, 1, true, d, nil)
		wantErr(t, err, Invalid, field)
	}
	if err := reg.Register(Type{Name: "game-score"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Register of a name: %v", err)
	}
	// The shared default registry is untouched by a program's Register.
	if _, ok := builtin().Lookup("game-score"); ok {
		t.Fatal("Register on a Builtin() copy changed the default registry")
	}
}

func TestRegisterRefusesNonsense(t *testing.T) {
	bad := []Type{
		{},
		{Name: "a b"},
		{Name: "t", Fields: []Field{{Name: "type", Format: Text}}},
		{Name: "t", Fields: []Field{{Name: "x"}}},
		{Name: "t", Fields: []Field{{Name: "x", Format: Text}, {Name: "x", Format: Text}}},
		{Name: "t", Revision: true},
		{Name: "t", Revision: true, Fields: []Field{{Name: "revision", Format: Text}}},
		{Name: "t", NameRule: "{x}"},
		{Name: "t", NameRule: "{x", Fields: []Field{{Name: "x", Format: Text, Required: true}}},
		{Name: "t", NameRule: "{x}", Fields: []Field{{Name: "x", Format: Text}}},
		{Name: "t", MinTTL: time.Hour, MaxTTL: time.Minute},
		{Name: "t", MaxSize: MaxSize + 1},
		{Name: "t", Fields: []Field{{Name: "x", Format: Text, List: true, MaxItems: MaxItems + 1}}},
		{Name: "t", Fields: []Field{{Name: "x", Format: Text, List: true, Exact: "a"}}},
	}
	for i, ty := range bad {
		if err := NewRegistry().Register(ty); err == nil {
			t.Errorf("case %d: Register(%+v) accepted", i, ty)
		}
	}
}

// docs/records.md shows every built-in example verbatim, with its name.
func TestRecordsDocShowsExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "records.md"))
	if err != nil {
		t.Fatal(err)
	}
	for typ, ex := range examples() {
		if !strings.Contains(string(doc), "\n"+ex[1]+"\n") || !strings.Contains(string(doc), "`"+ex[0]+"`") {
			t.Errorf("docs/records.md does not show the %s example %s named %s", typ, ex[1], ex[0])
		}
		if !strings.Contains(string(doc), "\n## "+typ+"\n") {
			t.Errorf("docs/records.md has no section for %s", typ)
		}
	}
}
