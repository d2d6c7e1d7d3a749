package config

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"text/template"

	"drover"
)

// tmpl is one template of the file that is rendered per host at deploy
// time: a hook, a check field, a config file's validate command.
type tmpl struct {
	at      keyPath
	text    string
	command bool // rendered with drover.RenderCommand (shell-quoted values)
	// path is .Path while rendering (validate commands only).
	path string
}

// templateFuncs must match the funcs of drover.Render and
// drover.RenderCommand, or a template that parses here fails there.
var templateFuncs = template.FuncMap{"quote": drover.ShellQuote}

// checkTemplates parses every template of the file and returns those that
// parse, for resolve to execute per host.
func (f *File) checkTemplates(ps *problems) []tmpl {
	var all []tmpl
	add := func(t tmpl) {
		if t.text != "" {
			all = append(all, t)
		}
	}
	for i, c := range f.ConfigFiles {
		add(tmpl{at: p("config_files", i, "validate"), text: c.Validate, command: true, path: c.Dest})
	}
	add(tmpl{at: p("hooks", "restart"), text: f.Hooks.Restart, command: true})
	add(tmpl{at: p("hooks", "stop"), text: f.Hooks.Stop, command: true})
	add(tmpl{at: p("hooks", "depool"), text: f.Hooks.Depool, command: true})
	add(tmpl{at: p("hooks", "repool"), text: f.Hooks.Repool, command: true})
	for _, h := range f.Hooks.lifecycle() {
		add(tmpl{at: p("hooks", h.key), text: h.text, command: true})
	}
	if hp := f.Rotation.HAProxy; hp != nil {
		add(tmpl{at: p("rotation", "haproxy", "server"), text: hp.Server})
	}
	for _, t := range f.blueGreenTemplates() {
		add(t)
	}
	for i, c := range f.Checks {
		at := p("checks", i)
		add(tmpl{at: at.with("address"), text: c.Address})
		add(tmpl{at: at.with("url"), text: c.URL})
		add(tmpl{at: at.with("expect_body"), text: c.ExpectBody})
		for _, k := range slices.Sorted(maps.Keys(c.ExpectHeaders)) {
			add(tmpl{at: at.with("expect_headers", k), text: c.ExpectHeaders[k]})
		}
		add(tmpl{at: at.with("command"), text: c.Command, command: true})
		// A log path is a file name on the host, not a command.
		add(tmpl{at: at.with("path"), text: c.Path})
	}
	// hooks.replace runs on this machine for hosts the inventory may not
	// list yet, so it is not executed here; its shape is still checked.
	if _, err := template.New("").Funcs(templateFuncs).Parse(f.Hooks.Replace); err == nil && f.Hooks.Replace != "" {
		checkCommandShape(ps, p("hooks", "replace"), f.Hooks.Replace)
	}
	ok := all[:0]
	for _, t := range all {
		if _, err := template.New(t.at.String()).Option("missingkey=error").Funcs(templateFuncs).Parse(t.text); err != nil {
			ps.add(t.at, "fix the template syntax: actions look like {{.Host.Vars.port}}; see text/template",
				"%s: template does not parse: %v", t.at, err)
			continue
		}
		if t.command && !checkCommandShape(ps, t.at, t.text) {
			continue
		}
		ok = append(ok, t)
	}
	return ok
}

// checkCommandShape refuses, at the template's line, a command template
// that puts a value where quoting cannot keep it one word (inside quotes,
// a here-document, ${...}; see drover.CheckCommandTemplate): a host var
// like $(touch /tmp/pwned) must never run, wherever the vars come from.
func checkCommandShape(ps *problems, at keyPath, text string) bool {
	err := drover.CheckCommandTemplate(text)
	if err == nil {
		return true
	}
	var e *drover.Error
	if errors.As(err, &e) {
		ps.add(at, e.Hint, "%s: %s", at, e.Message)
	} else {
		ps.add(at, "fix the command", "%s: %v", at, err)
	}
	return false
}

// execTemplates renders every template for every host of s with
// placeholder release values, exactly as the runner will, and reports the
// first host each template fails for. A check on {{.Host.Vars.port}} for a
// host without a port would otherwise fail on that host mid-deploy, after
// the hosts before it were switched.
func (f *File) execTemplates(ps *problems, s *drover.Spec, fl fleet, tmpls []tmpl) {
	for _, t := range tmpls {
		var first string
		var reason error
		failed := 0
		for _, h := range s.Hosts {
			data := drover.NewTemplateData(s, h, "RELEASE-ID", "VERSION")
			data.Path = t.path
			var err error
			if t.command {
				_, err = drover.RenderCommand(t.at.String(), t.text, data)
			} else {
				_, err = drover.Render(t.at.String(), t.text, data)
			}
			if err != nil {
				if failed == 0 {
					first, reason = h.Name, err
				}
				failed++
			}
		}
		if failed == 0 {
			continue
		}
		more := ""
		if failed > 1 {
			more = " (and " + strconv.Itoa(failed-1) + " more host"
			if failed > 2 {
				more += "s"
			}
			more += ")"
		}
		ps.add(t.at, "define the value for every host (its vars, or the environment's vars) or fix the template; "+
			"templates see .Host.Name, .Host.Address, .Host.Vars, .Release.ID, .Release.Version, .Service, .Env, .Root and .Path",
			"%s: template fails for host %s%s%s: %s", t.at, first, fl.note(t.at, fl.templateNote), more, execReason(reason))
	}
}

var executing = regexp.MustCompile(`executing ".*?" (at <.*)$`)

// execReason shortens text/template's message to the part that says what
// went wrong: `at <.Host.Vars.port>: map has no entry for key "port"`.
func execReason(err error) string {
	msg := err.Error()
	if e, ok := err.(*drover.Error); ok {
		msg = e.Message
	}
	if m := executing.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return msg
}
