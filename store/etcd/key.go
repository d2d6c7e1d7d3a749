package etcd

import "drover"

// checkKey and checkID are the rules every store shares (drover.CheckStoreKey).
func checkKey(key string) error { return drover.CheckStoreKey(key) }

func checkID(id string) error { return drover.CheckDeployID(id) }

func notFound(id string) error {
	return drover.Errorf(drover.ENOTFOUND, "no deploy %s", id).WithHint("see `drover history` for deploy ids")
}
