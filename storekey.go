package drover

import (
	"fmt"
	"strings"
)

// Limits of lock keys and deploy IDs, the same in every Store: a key or ID
// one store accepts the others accept too, so switching stores never turns a
// working config into an error. MaxStoreKey keeps store/file's escaped form
// (up to 3 bytes per byte) a legal file name.
const (
	MaxStoreKey = 80
	MaxDeployID = 128
)

// CheckStoreKey refuses a lock/history key that is not a service name or
// service/env. Keys come from drover.yaml and --env, so they are refused,
// not repaired: a typo ("a//b", "hello/", "..") must neither name a path
// outside a state directory nor give two spellings of one environment two
// locks.
func CheckStoreKey(key string) error {
	invalid := func(why string) error {
		return (&Error{Code: EINVALID, Message: fmt.Sprintf("lock key %q %s", key, why)}).
			WithHint("a key is a service name, or service/env")
	}
	if key == "" {
		return invalid("is empty")
	}
	if len(key) > MaxStoreKey {
		return invalid(fmt.Sprintf("is longer than %d bytes", MaxStoreKey))
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return invalid("has an empty path segment")
		case ".", "..":
			return invalid(`has a "." or ".." segment`)
		}
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] == 0x7f {
			return invalid("has a control character")
		}
	}
	return nil
}

// CheckDeployID refuses a deploy ID that is not a plain file name: IDs
// become file names and key segments, and a person types them (`drover
// show d-...`), so "../x" must never reach a file system or a key space.
func CheckDeployID(id string) error {
	ok := id != "" && len(id) <= MaxDeployID && id[0] != '.'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return Errorf(EINVALID, "deploy id %q is not valid (letters, digits, '.', '-', '_'; at most %d)", id, MaxDeployID)
	}
	return nil
}
