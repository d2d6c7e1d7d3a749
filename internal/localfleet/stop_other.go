//go:build !unix

package localfleet

// Stop does nothing where the release scripts cannot run: the sample
// service's hooks are POSIX shell scripts, so no service was started.
func (f *Fleet) Stop() {}

// Processes returns nil where the release scripts cannot run.
func (f *Fleet) Processes() []int { return nil }
