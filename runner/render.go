package runner

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"

	"drover"
	"drover/release"
)

// renderer renders config files for hosts from one release.
type renderer struct {
	spec      *drover.Spec
	release   *drover.Release
	templates map[string][]byte
}

func newRenderer(s *drover.Spec, rel *drover.Release) (*renderer, error) {
	var names []string
	for _, f := range s.ConfigFiles {
		names = append(names, f.Template)
	}
	t, err := release.ReadFiles(rel, names)
	if err != nil {
		return nil, err
	}
	return &renderer{spec: s, release: rel, templates: t}, nil
}

func (rd *renderer) render(h drover.Host) ([]drover.RenderedFile, error) {
	return rd.renderSlot(h, drover.TemplateSlot{})
}

// renderSlot renders h's config files as templates see them in slot (a
// blue/green colour; zero when rolling).
func (rd *renderer) renderSlot(h drover.Host, slot drover.TemplateSlot) ([]drover.RenderedFile, error) {
	data := drover.NewTemplateData(rd.spec, h, rd.release.ID(), rd.release.Version())
	data.Slot = slot
	files, err := drover.RenderConfigFiles(rd.spec.ConfigFiles, func(p string) ([]byte, error) {
		b, ok := rd.templates[path.Clean(p)]
		if !ok {
			return nil, drover.Errorf(drover.EINVALID, "config_files: template %s is not in release %s", p, rd.release.ID()).WithHint("check the template path in drover.yaml against the release directory")
		}
		return b, nil
	}, data)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return files, nil
}

// renderAll renders every target's config. A template that fails to
// render for some host is bad input: it is reported before anything is
// touched, reachable host or not.
func (rd *renderer) renderAll(targets map[string]bool) error {
	for _, h := range rd.spec.Hosts {
		if !targets[h.Name] {
			continue
		}
		if _, err := rd.render(h); err != nil {
			if terr := rd.templateFailures(targets); terr != nil {
				return terr
			}
			return err
		}
	}
	return nil
}

// templateHint is the hint of a template that fails for some host: the
// words config validation gives a check or hook template (config/templates.go),
// so a missing var reads the same wherever the template lives.
const templateHint = "define the value for every host (its vars, or the environment's vars) or fix the template; " +
	"templates see .Host.Name, .Host.Address, .Host.Vars, .Release.ID, .Release.Version, .Service, .Env, .Root and .Path"

// execFailure picks text/template's execution error apart: the line in
// the template and what went wrong (`at <.Host.Vars.port>: map has no
// entry for key "port"`).
var execFailure = regexp.MustCompile(`template: .*?:(\d+):\d+: executing ".*?" (at <.*)$`)

// templateFailures renders every release config template for every
// target and reports each template that fails, once, as config validation
// reports a check template: at the template's line, naming the first host
// it fails for and how many more, with the same hint. Without it, a
// missing var surfaced as a raw Go template error naming one host. nil
// when no template fails to execute (the failure is something else).
func (rd *renderer) templateFailures(targets map[string]bool) error {
	var errs []error
	for i, f := range rd.spec.ConfigFiles {
		text, ok := rd.templates[path.Clean(f.Template)]
		if !ok {
			continue
		}
		var first, reason string
		line, failed := 0, 0
		for _, h := range rd.spec.Hosts {
			if !targets[h.Name] {
				continue
			}
			data := drover.NewTemplateData(rd.spec, h, rd.release.ID(), rd.release.Version())
			_, err := drover.Render(f.Template, string(text), data)
			if err == nil {
				continue
			}
			if failed == 0 {
				first, reason = h.Name, err.Error()
				var de *drover.Error
				if errors.As(err, &de) {
					reason = de.Message
				}
				if m := execFailure.FindStringSubmatch(reason); m != nil {
					line, _ = strconv.Atoi(m[1])
					reason = m[2]
				}
			}
			failed++
		}
		if failed == 0 {
			continue
		}
		more := ""
		if failed > 1 {
			more = fmt.Sprintf(" (and %d more host", failed-1)
			if failed > 2 {
				more += "s"
			}
			more += ")"
		}
		where := f.Template
		if line > 0 {
			where = fmt.Sprintf("%s:%d", f.Template, line)
		}
		errs = append(errs, &drover.Error{Code: drover.EINVALID, Where: where,
			Message: fmt.Sprintf("config_files[%d] (release %s): template fails for host %s%s: %s", i, rd.release.ID(), first, more, reason),
			Hint:    templateHint})
	}
	return errors.Join(errs...)
}
