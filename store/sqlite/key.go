package sqlite

import (
	"crypto/sha256"
	"encoding/hex"

	"drover"
)

// checkKey and checkID are the rules every store shares (drover.CheckStoreKey).
func checkKey(key string) error { return drover.CheckStoreKey(key) }

func checkID(id string) error { return drover.CheckDeployID(id) }

// lockFileName names the flock file of key: a hash, so any valid key is
// one file name with no escaping rules to get wrong.
func lockFileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12]) + ".lock"
}

func notFound(id string) error {
	return drover.Errorf(drover.ENOTFOUND, "no deploy %s", id).WithHint("see `drover history` for deploy ids")
}
