package api_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/api"
)

// schemas checks JSON against the components of openapi.json: the subset
// of OpenAPI the document uses (type, properties, required, items,
// additionalProperties, enum, nullable, allOf, $ref). An object may have
// only the properties its schema lists, so that the document cannot fall
// behind what the server sends.
type schemas struct {
	doc map[string]any
}

func loadSchemas(t *testing.T) schemas {
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	return schemas{doc}
}

func (s schemas) ref(r string) map[string]any {
	var v any = s.doc
	for _, p := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
		v = v.(map[string]any)[p]
	}
	return v.(map[string]any)
}

// check returns what is wrong with v under schema, at path.
func (s schemas) check(schema map[string]any, v any, path string) []string {
	if r, ok := schema["$ref"].(string); ok {
		return s.check(s.ref(r), v, path)
	}
	if all, ok := schema["allOf"].([]any); ok {
		// Merge the parts' properties: the document uses allOf to add to
		// an object or to describe a $ref.
		merged := map[string]any{"type": "object", "properties": map[string]any{}}
		var req []any
		for _, part := range all {
			p := part.(map[string]any)
			if r, ok := p["$ref"].(string); ok {
				p = s.ref(r)
			}
			if p["type"] != "object" {
				return s.check(p, v, path)
			}
			for k, x := range p["properties"].(map[string]any) {
				merged["properties"].(map[string]any)[k] = x
			}
			if r, ok := p["required"].([]any); ok {
				req = append(req, r...)
			}
		}
		merged["required"] = req
		return s.check(merged, v, path)
	}
	if v == nil {
		if schema["nullable"] == true {
			return nil
		}
		return []string{path + ": null"}
	}
	var errs []string
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", path, v, enum))
		}
	}
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want an object", path, v)}
		}
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s: required %q missing", path, r))
				}
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := props[k].(map[string]any); ok {
				errs = append(errs, s.check(p, m[k], path+"."+k)...)
			} else if ap, ok := schema["additionalProperties"].(map[string]any); ok {
				errs = append(errs, s.check(ap, m[k], path+"."+k)...)
			} else if props != nil || schema["additionalProperties"] == nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not in the schema", path, k))
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want an array", path, v)}
		}
		for i, x := range a {
			errs = append(errs, s.check(schema["items"].(map[string]any), x, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a string", path, v))
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			errs = append(errs, fmt.Sprintf("%s: %v, want an integer", path, v))
		}
	case "number":
		if _, ok := v.(float64); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a number", path, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a boolean", path, v))
		}
	}
	return errs
}

func (s schemas) expect(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, e := range s.check(s.ref("#/components/schemas/"+name), v, name) {
		t.Error(e)
	}
}

// What the server sends, answers, errors and events, is what openapi.json
// says, field by field.
func TestAnswersMatchTheirOpenAPISchemas(t *testing.T) {
	s := loadSchemas(t)
	e := newEnv(t, api.Options{})
	e.f.NoAnswer, e.f.Refuse = 2, 1
	s.expect(t, "PutResult", e.write("PUT", "/api/v1/values?key=k&ttl=2h", "v").body)
	e.write("PUT", "/api/v1/values?key=k&publisher="+strings.Repeat("ab", 20), "\x00")
	s.expect(t, "Info", e.get("/api/v1/info").body)
	s.expect(t, "Stats", e.get("/api/v1/stats").body)
	s.expect(t, "Table", e.get("/api/v1/table").body)
	s.expect(t, "KeysPage", e.get("/api/v1/keys").body)
	e.write("PUT", "/api/v1/values?key=k2", "v")
	s.expect(t, "KeysPage", e.get("/api/v1/keys?limit=1").body) // with next
	s.expect(t, "GetResult", e.get("/api/v1/values?key=k").body)
	s.expect(t, "PingResult", e.write("POST", "/api/v1/ping", `{"addr":"127.0.0.1:4001"}`).body)
	s.expect(t, "Nodes", e.get("/api/v1/nodes?key=k").body)
	s.expect(t, "LookupResult", e.get("/api/v1/lookup?key=k&type=value").body)
	s.expect(t, "DeleteResult", e.write("DELETE", "/api/v1/values?key=k", "").body)
	// Errors, with and without a result.
	s.expect(t, "Error", e.get("/api/v1/values?key=nobody").body)
	quorum := e.write("PUT", "/api/v1/values?key=k&quorum=20", "v").body
	s.expect(t, "Error", quorum)
	var withResult struct {
		Result json.RawMessage `json:"result"`
	}
	json.Unmarshal(quorum, &withResult)
	s.expect(t, "PutResult", withResult.Result)
	// Events.
	st := e.stream("/api/v1/values/events?key=k")
	e.f.WaitSubscribed(1, wait)
	go e.write("PUT", "/api/v1/values?key=k", "v")
	_, data := st.event()
	s.expect(t, "ValueEvent", []byte(data))
	ev := e.stream("/api/v1/events")
	e.f.WaitSubscribed(2, wait)
	go e.f.Emit(api.NodeEvent{Kind: "stats", Time: time.Now(), Sample: &api.Sample{Interval: time.Second, Rates: map[string]float64{"requests_in": 1}, Drops: map[string]uint64{"malformed": 1}}})
	_, data = ev.event()
	s.expect(t, "NodeEvent", []byte(data))
	go e.f.Emit(api.NodeEvent{Kind: "joined", Time: time.Now(), Message: "joined through 1 seed"})
	_, data = ev.event()
	s.expect(t, "NodeEvent", []byte(data))
}
