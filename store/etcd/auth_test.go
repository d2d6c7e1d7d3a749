package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"drover"
	"drover/internal/etcdtest"
	"drover/store/etcd"
)

// A plain-http endpoint off loopback is refused unless allowed: anyone on
// the path would read the journal, forge approvals and take locks. TLS
// (https://, or host:port with a CA) and loopback are fine.
func TestEtcdOpenRefusesPlainRemote(t *testing.T) {
	for _, ep := range []string{"http://10.1.2.3:2379", "etcd1:2379", "http://etcd1.example:2379/"} {
		s, err := etcd.Open(etcd.Options{Endpoints: []string{"http://127.0.0.1:2379", ep}})
		if drover.ErrorCode(err) != drover.EINVALID || !strings.Contains(err.Error(), ep) || !strings.Contains(drover.ErrorHint(err), "allow_insecure") {
			t.Errorf("Open(%s): %v, want EINVALID naming it", ep, err)
		}
		if s != nil {
			s.Close()
		}
		s, err = etcd.Open(etcd.Options{Endpoints: []string{ep}, AllowInsecure: true})
		if err != nil {
			t.Errorf("Open(%s) with AllowInsecure: %v", ep, err)
		} else {
			s.Close()
		}
	}
	for _, ep := range []string{"https://etcd1:2379", "http://127.0.0.1:2379", "http://localhost:2379", "http://[::1]:2379", "127.0.0.1:2379"} {
		s, err := etcd.Open(etcd.Options{Endpoints: []string{ep}})
		if err != nil {
			t.Errorf("Open(%s): %v", ep, err)
		} else {
			s.Close()
		}
	}
}

// With etcd's authentication on, the store works with the right user and
// password, and fails — without touching anything — with a wrong one or
// none.
func TestEtcdPasswordAuth(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "deployer"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "deployer", "/drover", clientv3.GetPrefixRangeEnd("/drover"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "drover", "s3cret-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "drover", "deployer"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	try := func(user, pw string) error {
		s, err := etcd.Open(etcd.Options{Endpoints: []string{srv.Endpoint}, Username: user, Password: pw,
			DialTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second})
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.History(ctx, "hello", 1)
		return err
	}
	if err := try("drover", "s3cret-pw"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	for _, c := range [][2]string{{"drover", "wrong"}, {"", ""}} {
		err := try(c[0], c[1])
		if err == nil {
			t.Errorf("user %q password %q: read the store", c[0], c[1])
		} else if strings.Contains(err.Error(), "s3cret-pw") || (c[1] != "" && strings.Contains(err.Error(), c[1])) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
