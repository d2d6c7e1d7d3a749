package drover

import (
	"sync"
	"text/template"
)

// templates is the one cache of parsed templates, config file and check
// templates (template.go) and command templates (shellcommand.go) alike:
// a deploy renders the same few for every host and step, and parsing, not
// executing, was most of that cost. A parsed template may be executed
// concurrently.
var templates templateCache

// maxCachedTemplates bounds the cache: a server fed ever new templates
// must not grow without bound. Past it templates are parsed every time.
const maxCachedTemplates = 4096

type templateCache struct {
	mu sync.Mutex
	m  map[parsedKey]cachedTemplate
}

type parsedKey struct {
	name, text string
	command    bool // a command template (shellcommand.go)
}

// cachedTemplate is a parsed template, or why it was refused, and its
// fast form when it has one (fasttemplate.go).
type cachedTemplate struct {
	t    *template.Template
	fast *fastTemplate
	err  error
}

// get returns the template of k, calling parse once per key (as long as
// the cache has room) and remembering a refusal as well as a success.
func (c *templateCache) get(k parsedKey, parse func() (*template.Template, error)) cachedTemplate {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return e
	}
	t, err := parse()
	e = cachedTemplate{t: t, err: err}
	if err == nil {
		e.fast = compileFast(t, k.command)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[parsedKey]cachedTemplate{}
	}
	if len(c.m) < maxCachedTemplates {
		c.m[k] = e
	}
	c.mu.Unlock()
	return e
}
