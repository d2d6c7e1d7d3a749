package ssh

import "io"

// HostCopy writes to w what a host holds of the local drover binary at p
// once drover has installed it there (what is sent: stripped when it is
// ELF, see hostBinary) and returns its sha256, which names it on the host
// (RemoteBinary). internal/sshfleet puts it on test hosts, as an earlier
// deploy would have, for the tests that are not about the upload.
func HostCopy(p string, w io.Writer) (sum string, err error) {
	b := &hostBinary{path: p}
	b.load()
	if b.err != nil {
		return "", b.err
	}
	r, f, err := b.open()
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(w, r); err != nil {
		return "", err
	}
	return b.sum, nil
}
