package hostops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"drover"
	"drover/release"
)

// StageFile stages the bundle file at bundlePath; see Stage.
func (h *Host) StageFile(ctx context.Context, bundlePath string, req drover.StageRequest) (drover.StageResult, error) {
	return withBundleFile(bundlePath, func(f io.Reader) (drover.StageResult, error) { return h.Stage(ctx, f, req) })
}

// withBundleFile opens the bundle file at bundlePath for use, with the
// errors StageFile and ValidateFile both give for a missing or unreadable one.
func withBundleFile(bundlePath string, use func(io.Reader) (drover.StageResult, error)) (drover.StageResult, error) {
	f, err := os.Open(bundlePath)
	if errors.Is(err, fs.ErrNotExist) {
		return drover.StageResult{}, drover.Errorf(drover.ENOTFOUND, "bundle %s: no such file", bundlePath)
	}
	if err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EFAILED, "bundle %s: %v", bundlePath, err)
	}
	defer f.Close()
	return use(f)
}

// Stage receives a bundle stream and makes releases/<slot> from it:
//
//  1. unpack into releases/.stage-<random> with release.Unpack, or, when
//     req.Release has the bundle's sha256, release.UnpackBundle, which
//     checks the stream's sha256 and size against it (the bundle crossed
//     a network; what arrived must be what was built);
//  2. link each shared dir into it (shared.go), so validate sees them;
//  3. render each config file from its template inside the release, with
//     req.Data exactly as given (see renderConfig), to its Dest inside the
//     staging directory;
//  4. run each config file's validate command there; a non-zero exit is
//     EFAILED with the output's tail;
//  5. choose the slot (see chooseSlot), write .drover-slot.json and rename
//     the staging directory into place.
//
// Any failure removes the staging directory, so a failed stage leaves no
// slot behind that a later promote could pick up half-made.
func (h *Host) Stage(ctx context.Context, bundle io.Reader, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "stage: no release in the request")
	}
	if err := os.MkdirAll(h.releasesDir(), 0o755); err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	stage := filepath.Join(h.releasesDir(), stagePrefix+randomSuffix())
	if err := os.Mkdir(stage, 0o755); err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	res, err := h.stage(ctx, bundle, req, stage)
	if err != nil {
		// Nothing from a failed stage may remain. If removal fails too,
		// Prune removes the .stage- directory later.
		os.RemoveAll(stage)
		return drover.StageResult{}, err
	}
	return res, nil
}

// ValidateFile validates the bundle file at bundlePath; see Validate.
func (h *Host) ValidateFile(ctx context.Context, bundlePath string, req drover.StageRequest) (drover.StageResult, error) {
	return withBundleFile(bundlePath, func(f io.Reader) (drover.StageResult, error) { return h.Validate(ctx, f, req) })
}

// Validate does what Stage does up to its validate commands — unpack,
// check, render, validate — in a scratch directory outside the deploy
// root, and removes it: `drover plan` runs a release's validate commands
// and leaves no trace on the host. The result's Slot is empty.
func (h *Host) Validate(ctx context.Context, bundle io.Reader, req drover.StageRequest) (drover.StageResult, error) {
	if req.Release == nil {
		return drover.StageResult{}, drover.Errorf(drover.EINVALID, "validate: no release in the request")
	}
	scratch, err := os.MkdirTemp("", "drover-validate-")
	if err != nil {
		return drover.StageResult{}, drover.Errorf(drover.EFAILED, "validate: scratch directory: %v", err)
	}
	defer os.RemoveAll(scratch)
	_, configHash, err := h.prepare(ctx, bundle, req, scratch, true)
	if err != nil {
		return drover.StageResult{}, err
	}
	return drover.StageResult{ConfigHash: configHash}, nil
}

func (h *Host) stage(ctx context.Context, bundle io.Reader, req drover.StageRequest, stage string) (drover.StageResult, error) {
	var res drover.StageResult
	m, configHash, err := h.prepare(ctx, bundle, req, stage, false)
	if err != nil {
		return res, err
	}
	meta := SlotMeta{Release: m.ID, Version: m.Version, ConfigHash: configHash, StagedAt: h.now().UTC()}
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := writeFileAtomic(stage, SlotMetaName, append(b, '\n')); err != nil {
		return res, drover.Errorf(drover.EFAILED, "stage %s: %v", m.ID, err)
	}
	slot, reuse, err := h.chooseSlot(ctx, m.ID, configHash)
	if err != nil {
		return res, err
	}
	res = drover.StageResult{Slot: slot, ConfigHash: configHash, Reused: reuse}
	if reuse {
		os.RemoveAll(stage)
		return res, nil
	}
	if err := h.moveIntoPlace(stage, slot); err != nil {
		return res, err
	}
	return res, nil
}

// prepare unpacks the bundle into stage, checking it against req.Release,
// links the shared dirs into it, renders the config files there and runs
// their validate commands: every step of staging that can refuse a
// release, before a slot is chosen. In a scratch directory (Validate) the
// shared dirs are empty directories of the release: making them under the
// deploy root would leave a trace of a plan.
func (h *Host) prepare(ctx context.Context, bundle io.Reader, req drover.StageRequest, stage string, scratch bool) (drover.Manifest, string, error) {
	rel := req.Release
	in := &ctxReader{ctx: ctx, r: bundle}
	var m drover.Manifest
	var err error
	if rel.BundleSHA256 != "" {
		// The bundle crossed a network: what arrived must be what was
		// built, byte for byte.
		m, err = release.UnpackBundle(in, stage, rel.BundleSHA256, rel.BundleSize)
	} else {
		m, err = release.Unpack(in, stage)
	}
	if err != nil {
		if e := ctx.Err(); e != nil {
			return m, "", drover.Errorf(drover.ETIMEOUT, "stage %s: %v", rel.ID(), e)
		}
		return m, "", err
	}
	if m.ID != rel.ID() {
		return m, "", drover.Errorf(drover.EINVALID, "stage: bundle holds release %s, expected %s", m.ID, rel.ID())
	}
	if err := h.linkShared(stage, m.ID, req.SharedDirs, scratch); err != nil {
		return m, "", err
	}
	configHash, rendered, err := h.renderConfig(stage, req)
	if err != nil {
		return m, "", err
	}
	if err := h.validateConfig(ctx, stage, req, rendered); err != nil {
		return m, "", err
	}
	return m, configHash, nil
}

// renderConfig renders every config file with drover.RenderConfigFiles
// and writes it into the staging directory, and returns the config hash,
// drover.SlotHash of the rendered files and the shared dirs. The controller computes the same
// hash from the same functions and data to tell which hosts are already up
// to date; rendering here any differently (another .Path, another order)
// would make every host look out of date, or worse, up to date when not.
func (h *Host) renderConfig(stage string, req drover.StageRequest) (string, []drover.RenderedFile, error) {
	root, err := os.OpenRoot(stage)
	if err != nil {
		return "", nil, drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	defer root.Close()
	seen := map[string]bool{}
	for _, cf := range req.ConfigFiles {
		where := "config file " + cf.Dest
		if err := checkDest(cf.Dest); err != nil {
			return "", nil, drover.Errorf(drover.EINVALID, "%s: %v", where, err)
		}
		if sd := drover.InSharedDir(filepath.ToSlash(cf.Dest), req.SharedDirs); sd != "" {
			return "", nil, drover.Errorf(drover.EINVALID, "%s: inside shared dir %s, which every release shares", where, sd).
				WithHint("render config files into the release itself, outside shared_dirs")
		}
		d := filepath.Clean(cf.Dest)
		if seen[d] {
			return "", nil, drover.Errorf(drover.EINVALID, "%s: rendered twice", where)
		}
		seen[d] = true
		if !filepath.IsLocal(cf.Template) {
			return "", nil, drover.Errorf(drover.EINVALID, "%s: template %q must be a path inside the release", where, cf.Template)
		}
	}
	files, err := drover.RenderConfigFiles(req.ConfigFiles, func(p string) ([]byte, error) {
		b, err := root.ReadFile(p)
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "config file template %s is not in release %s", p, req.Release.ID()).
				WithHint("config_files[].template is a path inside the release directory")
		}
		return b, nil
	}, req.Data)
	if err != nil {
		return "", nil, err
	}
	for _, f := range files {
		if err := writeRendered(root, filepath.Clean(f.Dest), f); err != nil {
			return "", nil, configFileError(f.Dest, err)
		}
	}
	return drover.SlotHash(files, req.SharedDirs), files, nil
}

// checkDest refuses a config file destination outside the release
// directory or over the files drover itself keeps there.
func checkDest(dest string) error {
	if !filepath.IsLocal(dest) {
		return fmt.Errorf("dest %q must be a relative path inside the release directory", dest)
	}
	switch filepath.Clean(dest) {
	case drover.ManifestName, SlotMetaName:
		return fmt.Errorf("dest %q is a name drover keeps for itself", dest)
	}
	return nil
}

// validateConfig runs each config file's validate command in the staging
// directory, with .Path the rendered file there. It is the last chance to
// catch a config the service would refuse before any host switches.
func (h *Host) validateConfig(ctx context.Context, stage string, req drover.StageRequest, files []drover.RenderedFile) error {
	stageAbs, err := filepath.Abs(stage)
	if err != nil {
		return drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	run := h.RunValidate
	if run == nil {
		timeout := h.ValidateTimeout
		run = func(ctx context.Context, dir, command string) (drover.ExecResult, error) {
			return RunShell(ctx, dir, command, nil, timeout)
		}
	}
	for i, f := range files {
		cf := req.ConfigFiles[i]
		if strings.TrimSpace(cf.Validate) == "" {
			continue
		}
		where := "validate " + f.Dest
		data := req.Data
		data.Path = filepath.Join(stageAbs, filepath.Clean(f.Dest))
		command, err := drover.RenderCommand(where, cf.Validate, data)
		if err != nil {
			return err
		}
		r, err := run(ctx, stageAbs, command)
		if err != nil {
			var de *drover.Error
			if errors.As(err, &de) {
				return &drover.Error{Code: de.Code, Message: where, Err: err}
			}
			return drover.Errorf(drover.EFAILED, "%s: %v", where, err)
		}
		if r.ExitCode != 0 {
			return drover.Errorf(drover.EFAILED, "%s: %s exited %d: %s", where, command, r.ExitCode, strings.TrimSpace(r.Output)).
				WithHint("the rendered file is the template with this host's vars; fix the template, the vars or the validate command")
		}
	}
	return nil
}

// chooseSlot decides where a staged release with configHash goes:
//
//   - releases/<id> does not exist: there.
//   - it exists with the same release and config hash: reuse it (staging
//     is idempotent, a retried deploy does not redo work).
//   - it exists, differs, and is current or previous: it is immutable, so
//     the release goes to <id>+<8 hex of the config hash> (same rules).
//   - it exists, differs and is neither: a leftover of an earlier stage
//     that never went live; replace it.
func (h *Host) chooseSlot(ctx context.Context, id, configHash string) (slot string, reuse bool, err error) {
	st, err := h.State(ctx)
	if err != nil {
		return "", false, err
	}
	live := map[string]bool{st.Current: true, st.Previous: true, h.currentTarget(): true}
	for _, cand := range drover.SlotCandidates(id, configHash) {
		if err := checkSlot(cand); err != nil {
			return "", false, err
		}
		if !h.slotExists(cand) {
			return cand, false, nil
		}
		if meta, err := h.ReadSlotMeta(cand); err == nil && meta.Release == id && meta.ConfigHash == configHash {
			return cand, true, nil
		}
		// A directory drover did not stage is another tool's release
		// (foreign.go): never replaced, whatever its name.
		if !live[cand] && h.isDroverSlot(cand) {
			return cand, false, nil
		}
	}
	return "", false, drover.Errorf(drover.EFAILED, "stage %s: releases/%s and releases/%s are both live with other content", id, id, drover.ConfigSlot(id, configHash)).
		WithHint("check releases/ on the host by hand")
}

// moveIntoPlace renames the staging directory to releases/<slot>. A
// differing leftover there is first renamed aside under a .stage- name and
// removed after: removing it in place could crash half way and leave a
// directory whose .drover-slot.json still claims content it lost.
func (h *Host) moveIntoPlace(stage, slot string) error {
	dst := h.slotDir(slot)
	if _, err := os.Lstat(dst); err == nil {
		trash := filepath.Join(h.releasesDir(), stagePrefix+"old-"+randomSuffix())
		if err := os.Rename(dst, trash); err != nil {
			return drover.Errorf(drover.EFAILED, "stage: move aside %s/%s: %v", ReleasesDir, slot, err)
		}
		defer os.RemoveAll(trash)
	}
	if err := os.Rename(stage, dst); err != nil {
		return drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	if err := syncDir(h.releasesDir()); err != nil {
		return drover.Errorf(drover.EFAILED, "stage: %v", err)
	}
	return nil
}

// ctxReader stops a long transfer when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
