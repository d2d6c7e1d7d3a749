package file

import (
	"fmt"
	"strings"

	"drover"
)

// maxKey bounds a key so that its escaped form (up to 3 bytes per byte)
// stays a legal file name.
const maxKey = 80

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
	invalid := func(why string) error {
		return (&drover.Error{Code: drover.EINVALID, Message: fmt.Sprintf("lock key %q %s", key, why)}).
			WithHint("a key is a service name, or service/env")
	}
	if key == "" {
		return "", invalid("is empty")
	}
	if len(key) > maxKey {
		return "", invalid(fmt.Sprintf("is longer than %d bytes", maxKey))
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return "", invalid("has an empty path segment")
		case ".", "..":
			return "", invalid(`has a "." or ".." segment`)
		}
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] == 0x7f {
			return "", invalid("has a control character")
		}
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

// maxID bounds a deploy ID.
const maxID = 128

// checkID refuses a deploy ID that is not a plain file name: IDs become
// file names, and an ID is sometimes typed by a person (`drover status
// d-...`), so "../x" must not reach the file system.
func checkID(id string) error {
	ok := id != "" && len(id) <= maxID && id[0] != '.'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return drover.Errorf(drover.EINVALID, "deploy id %q is not valid (letters, digits, '.', '-', '_'; at most %d)", id, maxID)
	}
	return nil
}
