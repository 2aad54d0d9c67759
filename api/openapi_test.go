package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The document served at /openapi.json is the embedded api/openapi.json,
// byte for byte, and docs/openapi.json is the same file: the copy people
// read is the one the node serves.
func TestOpenAPIServedEqualsFileAndDocsCopy(t *testing.T) {
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile(filepath.Join("..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, docs) {
		t.Errorf("docs/openapi.json differs from api/openapi.json: cp api/openapi.json docs/openapi.json")
	}
	srv := httptest.NewServer(New(nil, Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(served, file) {
		t.Errorf("the served document differs from api/openapi.json")
	}
}

type openapiDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]openapiOp       `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type openapiOp struct {
	Parameters []struct {
		Ref string `json:"$ref"`
	} `json:"parameters"`
	Responses map[string]json.RawMessage `json:"responses"`
	Security  []map[string][]string      `json:"security"`
}

func loadDoc(t *testing.T) (openapiDoc, map[string]any) {
	t.Helper()
	var d openapiDoc
	if err := json.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	var raw map[string]any
	json.Unmarshal(OpenAPI, &raw)
	return d, raw
}

// Every route the server registers is in the document with its method and
// exactly its query parameters, and the document has no operation the
// server does not serve.
func TestOpenAPIDescribesEveryRouteAndNothingElse(t *testing.T) {
	d, raw := loadDoc(t)
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", d.OpenAPI)
	}
	served := map[string]bool{}
	for _, rt := range routes {
		key := strings.ToLower(rt.method) + " " + rt.path
		served[key] = true
		op, ok := d.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s is served but not in openapi.json", rt.method, rt.path)
			continue
		}
		var names []string
		for _, p := range op.Parameters {
			param, ok := resolve(raw, p.Ref).(map[string]any)
			if !ok {
				t.Errorf("%s %s: parameter %q does not resolve", rt.method, rt.path, p.Ref)
				continue
			}
			if param["in"] != "query" {
				t.Errorf("%s %s: parameter %v is not in the query", rt.method, rt.path, param["name"])
			}
			names = append(names, param["name"].(string))
		}
		want := append([]string(nil), rt.params...)
		sort.Strings(names)
		sort.Strings(want)
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("%s %s: openapi.json has parameters %v, the server takes %v", rt.method, rt.path, names, want)
		}
		if _, ok := op.Responses["401"]; !ok {
			t.Errorf("%s %s: no 401 response documented", rt.method, rt.path)
		}
		needsToken := len(op.Security) == 1 && len(op.Security[0]["bearer"]) == 0 && op.Security[0]["bearer"] != nil
		if isWrite(rt.method) != needsToken {
			t.Errorf("%s %s: documented security %v does not say what the server checks (write: %v)", rt.method, rt.path, op.Security, isWrite(rt.method))
		}
	}
	for path, ops := range d.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which the server does not serve", strings.ToUpper(method), path)
			}
		}
	}
}

// The Error schema lists every error code, and nothing else.
func TestOpenAPIListsEveryErrorCode(t *testing.T) {
	_, raw := loadDoc(t)
	enum, _ := resolve(raw, "#/components/schemas/Error/properties/error/properties/code/enum").([]any)
	var got, want []string
	for _, c := range enum {
		got = append(got, c.(string))
	}
	for _, c := range Codes() {
		want = append(want, string(c))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("openapi.json error codes %v, the API has %v", got, want)
	}
	desc, _ := resolve(raw, "#/components/schemas/Error/properties/error/properties/code/description").(string)
	for _, c := range want {
		if !strings.Contains(desc, c+":") {
			t.Errorf("the error code description does not explain %s", c)
		}
	}
}

// Every $ref in the document points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, raw := loadDoc(t)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					if resolve(raw, x.(string)) == nil {
						t.Errorf("%s: $ref %v does not resolve", at, x)
					}
					continue
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for _, x := range v {
				walk(x, at)
			}
		}
	}
	walk(raw, "#")
}

// resolve follows a local JSON pointer ("#/a/b").
func resolve(doc map[string]any, ref string) any {
	var v any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}
