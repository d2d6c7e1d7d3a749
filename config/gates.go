package config

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"drover"
	"drover/internal/jsonpath"
)

// This file validates what runs after groups: smoke checks (top-level
// smoke: after the last group, groups[].smoke: after that group) and
// invariants. Both run on the controller, so their templates are executed
// here once with placeholder release values and no host: a smoke URL
// naming {{.Host.Vars.port}} is an error at load time, not a halted deploy.

// InvariantFile is one entry of invariants.
type InvariantFile struct {
	Name    string              `yaml:"name"`
	Source  InvariantSourceFile `yaml:"source"`
	Rules   []InvariantRuleFile `yaml:"rules"`
	After   string              `yaml:"after"`
	Timeout string              `yaml:"timeout"`
}

// InvariantSourceFile is where an invariant's document comes from: exactly
// one of http (a URL fetched with GET) and command (run on the controller).
type InvariantSourceFile struct {
	HTTP    string `yaml:"http"`
	Command string `yaml:"command"`
}

// InvariantRuleFile is one rule of an invariant.
type InvariantRuleFile struct {
	Path    string   `yaml:"path"`
	Op      string   `yaml:"op"`
	Value   *float64 `yaml:"value"`
	Percent *float64 `yaml:"percent"`
}

const gateTemplateHint = "smoke checks and invariants run on the controller, once, for no host: " +
	"templates see .Release.ID, .Release.Version, .Service and .Env (not .Host)"

// placeholderGate is what gate templates are executed with at load time.
func (f *File) placeholderGate() drover.GateData {
	return drover.GateData{Release: drover.TemplateRelease{ID: "RELEASE-ID", Version: "VERSION"}, Service: f.Service, Env: "ENV"}
}

// checkSmoke validates a list of smoke checks at at and returns them with
// defaults applied.
func (f *File) checkSmoke(ps *problems, at keyPath, list []CheckFile) []drover.CheckSpec {
	var out []drover.CheckSpec
	names := map[string]keyPath{}
	for i, c := range list {
		cat := at.with(i)
		spec := f.checkCheck(ps, cat, c, names)
		if c.Type == "log" {
			ps.add(cat.with("type"), "move it to checks:, which run on each host after its restart",
				"%s: a log check reads a file on a host; smoke checks run once, on this machine", cat)
		}
		type field struct {
			key     keyPath
			text    string
			command bool
		}
		fields := []field{{cat.with("address"), c.Address, false}, {cat.with("url"), c.URL, false}, {cat.with("expect_body"), c.ExpectBody, false}, {cat.with("command"), c.Command, true}}
		for _, k := range slices.Sorted(maps.Keys(c.ExpectHeaders)) {
			fields = append(fields, field{cat.with("expect_headers", k), c.ExpectHeaders[k], false})
		}
		for _, fl := range fields {
			if fl.text != "" {
				f.checkGateTemplate(ps, fl.key, fl.text, fl.command)
			}
		}
		out = append(out, spec)
	}
	return out
}

// checkGateTemplate parses and executes one gate template.
func (f *File) checkGateTemplate(ps *problems, at keyPath, text string, command bool) string {
	var out string
	var err error
	if command && !checkCommandShape(ps, at, text) {
		return ""
	}
	if command {
		out, err = drover.RenderGateCommand(at.String(), text, f.placeholderGate())
	} else {
		out, err = drover.Render(at.String(), text, f.placeholderGate())
	}
	if err != nil {
		ps.add(at, gateTemplateHint, "%s: template fails: %s", at, execReason(err))
	}
	return out
}

// checkInvariants validates invariants and returns them with defaults.
func (f *File) checkInvariants(ps *problems) []drover.Invariant {
	var out []drover.Invariant
	names := map[string]keyPath{}
	for i, inv := range f.Invariants {
		at := p("invariants", i)
		d := drover.Invariant{
			Name:    inv.Name,
			URL:     inv.Source.HTTP,
			Command: inv.Source.Command,
			After:   inv.After,
			Timeout: f.duration(ps, at.with("timeout"), inv.Timeout, drover.DefaultInvariantTimeout),
		}
		switch j, dup := names[inv.Name]; {
		case inv.Name == "":
			ps.add(at, "name the invariant, e.g. name: orders; the name appears in events and errors", "%s.name: required", at)
		case !validName.MatchString(inv.Name):
			ps.add(at.with("name"), nameRule, "%s.name: %q is not a valid name", at, inv.Name)
		case dup:
			ps.add(at.with("name"), "give each invariant its own name", "%s.name: %q is already the name of %s", at, inv.Name, j)
		default:
			names[inv.Name] = at
		}
		sat := at.with("source")
		switch {
		case inv.Source.HTTP == "" && inv.Source.Command == "":
			ps.add(at, `add source: {http: URL} (fetched with GET) or source: {command: CMD} (its stdout, run on the controller)`,
				"%s.source: required: where the JSON document comes from", at)
		case inv.Source.HTTP != "" && inv.Source.Command != "":
			ps.add(sat, "keep one of http and command", "%s: both http and command are set; an invariant reads one document", sat)
		case inv.Source.HTTP != "":
			u := f.checkGateTemplate(ps, sat.with("http"), inv.Source.HTTP, false)
			if pu, err := url.Parse(u); u != "" && (err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "") {
				ps.add(sat.with("http"), "write a full URL, e.g. http://lb.example.com/stats", "%s.http: %q is not an http(s) URL", sat, inv.Source.HTTP)
			}
		default:
			f.checkGateTemplate(ps, sat.with("command"), inv.Source.Command, true)
		}
		switch inv.After {
		case "":
			d.After = drover.InvariantAfterGroup
		case drover.InvariantAfterGroup, drover.InvariantAfterDeploy:
		default:
			ps.add(at.with("after"), `use "group" (compare after every group; the default) or "deploy" (after the last group only)`,
				"%s.after: %q is not group or deploy", at, inv.After)
		}
		if len(inv.Rules) == 0 {
			ps.add(at, `add rules, e.g. rules: [{path: $.orders.count, op: gte}]`, "%s.rules: required, at least one rule", at)
		}
		for k, r := range inv.Rules {
			d.Rules = append(d.Rules, f.checkRule(ps, at.with("rules", k), r))
		}
		out = append(out, d)
	}
	return out
}

var ops = []string{drover.OpEqual, drover.OpGTE, drover.OpLTE, drover.OpWithin}

func (f *File) checkRule(ps *problems, at keyPath, r InvariantRuleFile) drover.InvariantRule {
	out := drover.InvariantRule{Path: r.Path, Op: r.Op, Value: r.Value}
	if r.Path == "" {
		ps.add(at, "name the value to compare, e.g. path: $.orders.count", "%s.path: required", at)
	} else if _, err := jsonpath.Parse(r.Path); err != nil {
		ps.add(at.with("path"), "write $ then .key and [n] steps, e.g. $.orders.count or $.shards[0].rows", "%s.path: %v", at, err)
	}
	switch {
	case r.Op == "":
		ps.add(at, "add op: "+strings.Join(ops, ", "), "%s.op: required", at)
	case !slices.Contains(ops, r.Op):
		ps.add(at.with("op"), "use one of "+strings.Join(ops, ", "), "%s.op: %q is not an operator", at, r.Op)
	}
	switch {
	case r.Op == drover.OpWithin && r.Percent == nil:
		ps.add(at, "add percent: N, e.g. percent: 5 allows the value to move 5% either way", "%s: op within needs percent", at)
	case r.Op != drover.OpWithin && r.Percent != nil && slices.Contains(ops, r.Op):
		ps.add(at.with("percent"), "remove percent, or use op: within", "%s.percent: only op within uses percent", at)
	case r.Percent != nil && *r.Percent < 0:
		ps.add(at.with("percent"), "use 0 or more", "%s.percent: %v is negative", at, *r.Percent)
	}
	if r.Percent != nil {
		out.Percent = *r.Percent
	}
	return out
}
