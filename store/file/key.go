package file

import (
	"fmt"
	"strings"

	"drover"
)

// escapeKey returns the single directory name that holds key.
//
// A key is a service name or service/env. It comes from drover.yaml and
// --env, so it is refused, not repaired, when it could name a path outside
// the state directory ("..", "/etc", "a//b"): a typo must not make two
// deploys share, or miss, a lock. What remains is encoded so that the name
// is one path element and distinct keys get distinct names: bytes outside
// [A-Za-z0-9._-] become %XX ("hello/staging" -> "hello%2Fstaging", and "%"
// itself -> "%25"), and a leading "." is encoded so no key is hidden.
func escapeKey(key string) (string, error) {
	if err := drover.CheckStoreKey(key); err != nil {
		return "", err
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		plain := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' && i > 0
		if plain {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// checkID refuses a deploy ID that is not a plain file name: IDs become
// file names here (drover.CheckDeployID).
func checkID(id string) error { return drover.CheckDeployID(id) }
