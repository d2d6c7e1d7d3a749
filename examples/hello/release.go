package hello

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// releaseFS is the release source tree. embed keeps no file modes, so
// WriteRelease sets them: scripts under bin/ are executable.
//
//go:embed all:release
var releaseFS embed.FS

// ConfigTemplate is the config template's path inside a release, and
// ConfigFile where drover renders it.
const (
	ConfigTemplate = "hello.conf.tmpl"
	ConfigFile     = "hello.conf"
)

// PIDFile and LogFile are where bin/restart records the running instance
// and sends its output, relative to the deploy root.
const (
	PIDFile = "run/hello.pid"
	LogFile = "run/hello.log"
)

const (
	healthyLine   = "health = " + HealthOK
	unhealthyLine = "health = " + HealthFail
)

// ReleaseFS returns the release source tree (without VERSION), rooted at
// the release directory.
func ReleaseFS() fs.FS {
	sub, err := fs.Sub(releaseFS, "release")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// WriteRelease writes the sample service's release source into dir
// (created if needed; existing files are overwritten) with a VERSION file
// holding version. A release that is not healthy has `health = fail` baked
// into its config template: it starts and serves /version, but /health
// answers 500 — the broken release drover must catch and roll back.
func WriteRelease(dir, version string, healthy bool) error {
	return WriteReleaseWith(dir, version, ReleaseOptions{Unhealthy: !healthy})
}

// ReleaseOptions say how a release written by WriteReleaseWith misbehaves.
type ReleaseOptions struct {
	// Unhealthy bakes `health = fail` into the config: /health answers
	// 500 and the host's own checks fail.
	Unhealthy bool
	// ErrorRate bakes `error_rate = ...` into the config: the release is
	// healthy by its checks but answers that share of requests to / with
	// 500, which only metrics show (canary analysis).
	ErrorRate float64
}

// WriteReleaseWith is WriteRelease with the ways a release can be broken.
func WriteReleaseWith(dir, version string, o ReleaseOptions) error {
	healthy := !o.Unhealthy
	if o.ErrorRate < 0 || o.ErrorRate > 1 {
		return fmt.Errorf("write release: error rate %v is not between 0 and 1", o.ErrorRate)
	}
	if version == "" || strings.ContainsAny(version, " \t\r\n") {
		return fmt.Errorf("write release: version %q must be non-empty and without spaces", version)
	}
	src := ReleaseFS()
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		if p == ConfigTemplate && !healthy {
			if strings.Count(string(data), healthyLine+"\n") != 1 {
				// Guard the template against edits that would silently
				// turn the "broken" release into a healthy one.
				return fmt.Errorf("%s: expected exactly one %q line", p, healthyLine)
			}
			data = []byte(strings.Replace(string(data), healthyLine+"\n", unhealthyLine+"\n", 1))
		}
		if p == ConfigTemplate && o.ErrorRate > 0 {
			data = append(data, fmt.Sprintf("error_rate = %s\n", strconv.FormatFloat(o.ErrorRate, 'g', -1, 64))...)
		}
		mode := os.FileMode(0o644)
		if path.Dir(p) == "bin" {
			mode = 0o755
		}
		return writeFile(dst, data, mode)
	})
	if err != nil {
		return fmt.Errorf("write release %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		return fmt.Errorf("write release %s: %w", dir, err)
	}
	return nil
}

// writeFile writes data with exactly mode, also when the file existed with
// another mode (os.WriteFile only applies mode to new files).
func writeFile(name string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(name, data, mode); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}
