package drover

import (
	"errors"
	"testing"
	"text/template"
)

// One parse per template, a refusal remembered like a success, and no
// growth past the bound.
func TestTemplateCache(t *testing.T) {
	var c templateCache
	calls := 0
	parse := func() (*template.Template, error) {
		calls++
		return template.New("x").Parse("{{.}}")
	}
	a := c.get(parsedKey{name: "x", text: "{{.}}"}, parse).t
	b := c.get(parsedKey{name: "x", text: "{{.}}"}, parse).t
	if calls != 1 || a != b {
		t.Errorf("parsed %d times, same template %v; want once", calls, a == b)
	}
	bad := errors.New("refused")
	for range 2 {
		if err := c.get(parsedKey{name: "x", text: "bad", command: true}, func() (*template.Template, error) { calls++; return nil, bad }).err; err != bad {
			t.Errorf("refusal: %v", err)
		}
	}
	if calls != 2 {
		t.Errorf("a refusal parsed %d times, want once", calls-1)
	}
	for i := range maxCachedTemplates + 10 {
		c.get(parsedKey{name: "n", text: string(rune('a'+i%26)) + string(rune(i))}, parse)
	}
	if len(c.m) != maxCachedTemplates {
		t.Errorf("cache holds %d templates, want at most %d", len(c.m), maxCachedTemplates)
	}
}
