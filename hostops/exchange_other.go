//go:build !linux && !darwin

package hostops

import "errors"

// exchange has no atomic swap to use here. Adopting a live directory
// with two renames would leave a moment with no current, which is what
// adopt exists to avoid, so it is refused; drover itself (the
// controller) builds and runs here.
func exchange(a, b string) error {
	return errors.New("no atomic exchange of two paths on this system")
}

const exchangeHint = "adopt a live directory on a Linux host (renameat2) or macOS (renamex_np)"
