package runner

import (
	"fmt"
	"path"

	"drover"
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
	t, err := rel.ReadFiles(names)
	if err != nil {
		return nil, err
	}
	return &renderer{spec: s, release: rel, templates: t}, nil
}

func (rd *renderer) render(h drover.Host) ([]drover.RenderedFile, error) {
	data := drover.NewTemplateData(rd.spec, h, rd.release.ID(), rd.release.Version())
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

// desiredConfig returns each target's config hash for the release. A
// template that fails to render for some host is bad input: it is reported
// before anything is touched.
func (r *Runner) desiredConfig(rel *drover.Release, targets map[string]bool) (map[string]string, error) {
	rd, err := newRenderer(r.Spec, rel)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, h := range r.Spec.Hosts {
		if !targets[h.Name] {
			continue
		}
		files, err := rd.render(h)
		if err != nil {
			return nil, err
		}
		out[h.Name] = drover.ConfigHash(files)
	}
	return out, nil
}
