package jsonpath

import (
	"encoding/json"
	"strings"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGet(t *testing.T) {
	doc := decode(t, `{"orders":{"count":1042,"by-region":[{"n":3},{"n":7}]},"ok":true,"name":"x"}`)
	for _, tc := range []struct {
		path, want string
	}{
		{"$", `{"name":"x","ok":true,"orders":{"by-region":[{"n":3},{"n":7}],"count":1042}}`},
		{"$.orders.count", "1042"},
		{"$.orders.by-region[1].n", "7"},
		{"$.orders.by-region[0]", `{"n":3}`},
		{"$.ok", "true"},
		{"$.name", `"x"`},
	} {
		p, err := Parse(tc.path)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.path, err)
		}
		v, err := p.Get(doc)
		if err != nil {
			t.Fatalf("Get(%q): %v", tc.path, err)
		}
		b, _ := json.Marshal(v)
		if string(b) != tc.want {
			t.Errorf("Get(%q) = %s, want %s", tc.path, b, tc.want)
		}
		if p.String() != tc.path {
			t.Errorf("String() = %q, want %q", p.String(), tc.path)
		}
	}
}

func TestGetErrorsSayHowFarThePathGot(t *testing.T) {
	doc := decode(t, `{"orders":{"count":1042,"items":[1,2]}}`)
	for _, tc := range []struct{ path, want string }{
		{"$.orders.total", `no key "total" in $.orders (keys: count, items)`},
		{"$.orders.items[2]", "$.orders.items has 2 elements: [2] is out of range"},
		{"$.orders[0]", "$.orders is an object, not an array: [0] does not apply"},
		{"$.orders.items.n", "$.orders.items is an array, not an object: .n does not apply"},
		{"$.orders.count.n", "$.orders.count is a number: .n does not apply"},
		{"$.orders.count[0]", "$.orders.count is a number: [0] does not apply"},
	} {
		p, err := Parse(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Get(doc)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Get(%q) error = %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"orders.count", "must start with $"},
		{"$.", "a key must follow '.' at character 2"},
		{"$..x", "a key must follow '.' at character 2"},
		{"$.a[1", "never closed"},
		{"$.a[-1]", "[-1] at character 4 is not an index"},
		{"$.a[x]", "[x] at character 4 is not an index"},
		{"$.a b", `unexpected ' ' at character 4`},
		{"$.a[*]", "is not an index"},
		{`$["a"]`, "is not an index"},
	} {
		_, err := Parse(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.path, err, tc.want)
		}
	}
}
