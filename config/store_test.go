package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"drover"
	"drover/store/etcd"
)

func TestConfig_Validate_Store(t *testing.T) {
	runErrCases(t, []errCase{
		{"name etcd without block", top + "store: etcd # <-\n" + obsFleet, "", "store: etcd needs its endpoints"},
		{"unknown name", top + "store: mysql # <-\n" + obsFleet, "", `store: "mysql" is not a store`},
		{"unknown block", top + "store:\n  consul: {endpoints: [x]} # <-\n" + obsFleet, "", `unknown key "consul" in store`},
		{"unknown etcd key", top + "store:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    ttl: 5s # <-\n" + obsFleet, "", `unknown key "ttl" in store.etcd`},
		{"no endpoints", top + "store:\n  etcd: # <-\n    prefix: /drover\n" + obsFleet, "", "store.etcd.endpoints: required"},
		{"endpoints type", top + "store:\n  etcd:\n    endpoints: http://127.0.0.1:2379 # <-\n" + obsFleet, "", "store.etcd.endpoints: expected a"},
		{"endpoint scheme", top + "store:\n  etcd:\n    endpoints:\n      - ftp://127.0.0.1:2379 # <-\n" + obsFleet, "", `has scheme "ftp"`},
		{"endpoint not host:port", top + "store:\n  etcd:\n    endpoints:\n      - etcd1 # <-\n" + obsFleet, "", "neither a URL nor host:port"},
		{"endpoint credentials", top + "store:\n  etcd:\n    endpoints:\n      - http://root:secret@etcd1:2379 # <-\n" + obsFleet, "", "store.etcd.endpoints[0] holds credentials"},
		{"http with tls", top + "store:\n  etcd:\n    endpoints:\n      - http://etcd1:2379 # <-\n    tls: {ca: ca.pem}\n" + obsFleet, "", "plain http:// while store.etcd.tls is set"},
		{"prefix", top + "store:\n  etcd:\n    endpoints: [etcd1:2379]\n    prefix: drover # <-\n" + obsFleet, "", `store.etcd.prefix: "drover" is not a key path`},
		{"cert without key", top + "store:\n  etcd:\n    endpoints: [https://etcd1:2379]\n    tls: {cert: c.pem} # <-\n" + obsFleet, "", "cert and key go together"},
		{"lease_ttl", top + "store:\n  etcd:\n    endpoints: [etcd1:2379]\n    lease_ttl: 10 # <-\n" + obsFleet, "", `store.etcd.lease_ttl: "10" is not a duration`},
		{"lease_ttl short", top + "store:\n  etcd:\n    endpoints: [etcd1:2379]\n    lease_ttl: 100ms # <-\n" + obsFleet, "", "under a second"},
		{"plain http off loopback", top + "store:\n  etcd:\n    endpoints:\n      - http://10.0.0.5:2379 # <-\n" + obsFleet, "", `"http://10.0.0.5:2379" is plain http to a host other than this machine`},
		{"host:port off loopback", top + "store:\n  etcd:\n    endpoints:\n      - etcd1:2379 # <-\n" + obsFleet, "", "plain http to a host other than this machine"},
		{"username without password_env", top + "store:\n  etcd:\n    endpoints: [https://etcd1:2379]\n    username: drover # <-\n" + obsFleet, "", "has no password_env"},
		{"password_env without username", top + "store:\n  etcd:\n    endpoints: [https://etcd1:2379]\n    password_env: P # <-\n" + obsFleet, "", "without a username"},
		{"password_env unset", top + "store:\n  etcd:\n    endpoints: [https://etcd1:2379]\n    username: drover\n    password_env: DROVER_TEST_UNSET_PW # <-\n" + obsFleet, "", "DROVER_TEST_UNSET_PW is not set"},
		{"dial_timeout", top + "store:\n  etcd:\n    endpoints: [etcd1:2379]\n    dial_timeout: -1s # <-\n" + obsFleet, "", "must be more than 0"},
	})
}

func TestConfig_StoreEtcd(t *testing.T) {
	dir := t.TempDir()
	doc := top + `store:
  etcd:
    endpoints: ["https://etcd1:2379", etcd2:2379]
    prefix: /teams/web/drover/
    tls: {ca: tls/ca.pem, cert: tls/drover.pem, key: /etc/drover/key.pem}
    lease_ttl: 4s
` + obsFleet
	s, err := ParseConfig(filepath.Join(dir, "drover.yaml"), []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	want := etcd.Options{
		Endpoints: []string{"https://etcd1:2379", "etcd2:2379"},
		Prefix:    "/teams/web/drover",
		CA:        filepath.Join(dir, "tls/ca.pem"), Cert: filepath.Join(dir, "tls/drover.pem"), Key: "/etc/drover/key.pem",
		LeaseTTL: 4 * time.Second, DialTimeout: DefaultEtcdDialTimeout,
	}
	if s.Store != drover.StoreEtcd || !reflect.DeepEqual(s.Etcd, want) {
		t.Errorf("store %q etcd\n got %+v\nwant %+v", s.Store, s.Etcd, want)
	}

	s, err = ParseConfig("drover.yaml", []byte(top+"store:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n"+obsFleet), "")
	if err != nil {
		t.Fatal(err)
	}
	want = etcd.Options{Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: DefaultEtcdPrefix, LeaseTTL: DefaultEtcdLeaseTTL, DialTimeout: DefaultEtcdDialTimeout}
	if s.Store != drover.StoreEtcd || !reflect.DeepEqual(s.Etcd, want) {
		t.Errorf("defaults: store %q etcd %+v, want %+v", s.Store, s.Etcd, want)
	}
}

// Username with the password from the environment; allow_insecure takes
// a plain-http endpoint off loopback.
func TestConfig_StoreEtcdAuth(t *testing.T) {
	t.Setenv("DROVER_TEST_ETCD_PW", "pw-1")
	doc := top + `store:
  etcd:
    endpoints: [http://etcd1:2379, etcd2:2379]
    allow_insecure: true
    username: drover
    password_env: DROVER_TEST_ETCD_PW
` + obsFleet
	s, err := ParseConfig("drover.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Etcd; e.Username != "drover" || e.Password != "pw-1" || !e.AllowInsecure || len(e.Endpoints) != 2 {
		t.Errorf("etcd %+v", e)
	}
}

// The scalar form keeps working, and says nothing of etcd.
func TestConfig_StoreNames(t *testing.T) {
	for doc, want := range map[string]string{"": drover.StoreSQLite, "store: sqlite\n": drover.StoreSQLite, "store: file\n": drover.StoreFile} {
		s, err := ParseConfig("drover.yaml", []byte(top+doc+obsFleet), "")
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if s.Store != want || !reflect.DeepEqual(s.Etcd, etcd.Options{}) {
			t.Errorf("%q: store %q etcd %+v, want %q", doc, s.Store, s.Etcd, want)
		}
	}
}
