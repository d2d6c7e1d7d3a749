package etcd

import (
	"fmt"
	"strings"

	"drover"
)

// maxKey and maxID are store/file's and store/sqlite's limits: a key or ID
// one store accepts the others accept too, so switching stores never turns
// a working config into an error.
const (
	maxKey = 80
	maxID  = 128
)

// checkKey refuses a key that is not a service name or service/env, with
// the rules of the other stores.
func checkKey(key string) error {
	invalid := func(why string) error {
		return (&drover.Error{Code: drover.EINVALID, Message: fmt.Sprintf("lock key %q %s", key, why)}).
			WithHint("a key is a service name, or service/env")
	}
	if key == "" {
		return invalid("is empty")
	}
	if len(key) > maxKey {
		return invalid(fmt.Sprintf("is longer than %d bytes", maxKey))
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

// checkID refuses a deploy ID the other stores refuse. IDs never hold '/',
// so an ID is one key segment.
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

func notFound(id string) error {
	return drover.Errorf(drover.ENOTFOUND, "no deploy %s", id).WithHint("see `drover history` for deploy ids")
}
