package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"drover"
	"drover/store/etcd"
)

// StoreFile is the store key. It takes either a name, as it always has —
// store: sqlite (the default) or store: file — or a block naming a
// distributed store:
//
//	store:
//	  etcd:
//	    endpoints: [https://etcd1:2379, https://etcd2:2379]
//	    prefix: /drover
//	    tls: {ca: ca.pem, cert: drover.pem, key: drover-key.pem}
//	    username: drover                 # etcd RBAC, with the password
//	    password_env: DROVER_ETCD_PASSWORD  # read from this variable
//	    allow_insecure: false            # plain http off loopback
//	    lease_ttl: 10s
//	    dial_timeout: 5s
type StoreFile struct {
	// name is the store named by a scalar; "" for a block or nothing.
	name string
	Etcd *EtcdFile `yaml:"etcd"`
}

// EtcdFile is store.etcd.
type EtcdFile struct {
	Endpoints   []string    `yaml:"endpoints"`
	Prefix      string      `yaml:"prefix"`
	TLS         EtcdTLSFile `yaml:"tls"`
	Username    string      `yaml:"username"`
	PasswordEnv string      `yaml:"password_env"`
	// AllowInsecure accepts http:// endpoints off loopback.
	AllowInsecure bool   `yaml:"allow_insecure"`
	LeaseTTL      string `yaml:"lease_ttl"`
	DialTimeout   string `yaml:"dial_timeout"`
}

// EtcdTLSFile is store.etcd.tls.
type EtcdTLSFile struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// UnmarshalYAML takes a scalar as the store's name, else the block (with
// the decoder's strictness: unknown keys are errors).
func (s *StoreFile) UnmarshalYAML(unmarshal func(any) error) error {
	var name string
	if err := unmarshal(&name); err == nil {
		*s = StoreFile{name: name}
		return nil
	}
	type block StoreFile // without this method
	var b block
	if err := unmarshal(&b); err != nil {
		return err
	}
	*s = StoreFile(b)
	return nil
}

// Name returns the store the key names: a scalar's value, "etcd" for an
// etcd block, "" when left out.
func (s StoreFile) Name() string {
	if s.Etcd != nil {
		return drover.StoreEtcd
	}
	return s.name
}

// Etcd defaults.
const (
	DefaultEtcdPrefix      = "/drover"
	DefaultEtcdLeaseTTL    = 10 * time.Second
	DefaultEtcdDialTimeout = 5 * time.Second
)

const storeHint = `use "sqlite" (the default: state_dir/drover.db), "file" (plain files under state_dir), or an etcd block: store: {etcd: {endpoints: [http://127.0.0.1:2379]}}`

// checkStore validates store and sets s.Store (and the etcd connection).
func (f *File) checkStore(ps *problems, s *drover.Spec) {
	s.Store = drover.DefaultStore
	switch name := f.Store.name; {
	case f.Store.Etcd != nil:
		s.Store = drover.StoreEtcd
		f.adapters.Etcd = f.checkEtcd(ps, *f.Store.Etcd)
	case name == "":
	case name == drover.StoreSQLite, name == drover.StoreFile:
		s.Store = name
	case name == drover.StoreEtcd:
		ps.add(p("store"), "write the etcd block: store: {etcd: {endpoints: [http://127.0.0.1:2379]}}",
			"store: etcd needs its endpoints")
	default:
		ps.add(p("store"), storeHint, "store: %q is not a store", name)
	}
}

func (f *File) checkEtcd(ps *problems, e EtcdFile) etcd.Options {
	at := p("store", "etcd")
	out := etcd.Options{Prefix: DefaultEtcdPrefix}
	if len(e.Endpoints) == 0 {
		ps.add(at, "list the etcd members' client URLs: endpoints: [http://127.0.0.1:2379]", "store.etcd.endpoints: required")
	}
	tls := e.TLS != (EtcdTLSFile{})
	for i, ep := range e.Endpoints {
		ept := at.with("endpoints", i)
		if u, err := url.Parse(ep); err == nil && u.User != nil {
			// Not echoed: it holds a password.
			ps.add(ept, "drop the user:password@ part; authenticate with store.etcd.tls", "store.etcd.endpoints[%d] holds credentials", i)
			continue
		}
		if err := checkEndpoint(ep, tls); err != "" {
			ps.add(ept, "write a client URL like http://127.0.0.1:2379, or https://... with store.etcd.tls", "store.etcd.endpoints[%d]: %q %s", i, ep, err)
			continue
		}
		if !tls && !strings.HasPrefix(ep, "https://") && !e.AllowInsecure && !loopbackEndpoint(ep) {
			// Whoever sits on the path between drover and etcd could
			// read the journal, forge approvals and steal locks.
			ps.add(ept, "use https:// with store.etcd.tls (ca, and cert/key for client authentication); or, on a network you trust, allow_insecure: true",
				"store.etcd.endpoints[%d]: %q is plain http to a host other than this machine", i, ep)
			continue
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	if e.Prefix != "" {
		q := strings.TrimRight(e.Prefix, "/")
		if !strings.HasPrefix(e.Prefix, "/") || q == "" || strings.Contains(q, "//") {
			ps.add(at.with("prefix"), "start the prefix with / and give it at least one segment, e.g. /drover or /teams/web/drover",
				"store.etcd.prefix: %q is not a key path", e.Prefix)
		} else {
			out.Prefix = q
		}
	}
	path := func(key, v string) string {
		if v == "" {
			return ""
		}
		return f.fromConfigDir(f.homePath(ps, at.with("tls", key), v))
	}
	out.CA, out.Cert, out.Key = path("ca", e.TLS.CA), path("cert", e.TLS.Cert), path("key", e.TLS.Key)
	if (e.TLS.Cert == "") != (e.TLS.Key == "") {
		ps.add(at.with("tls"), "give both cert and key (client authentication), or neither", "store.etcd.tls: cert and key go together")
	}
	out.AllowInsecure = e.AllowInsecure
	switch {
	case e.Username == "" && e.PasswordEnv != "":
		ps.add(at.with("password_env"), "add username: NAME, or drop password_env", "store.etcd.password_env without a username")
	case e.Username != "" && e.PasswordEnv == "":
		// Never a password in drover.yaml: it is committed and shared.
		ps.add(at.with("username"), "add password_env: VAR, naming the environment variable that holds the password",
			"store.etcd.username %q has no password_env", e.Username)
	case e.Username != "":
		pw, ok := os.LookupEnv(e.PasswordEnv)
		if !ok || pw == "" {
			ps.add(at.with("password_env"), "export "+e.PasswordEnv+" with etcd's password for "+e.Username+" before running drover",
				"store.etcd.password_env: environment variable %s is not set", e.PasswordEnv)
		}
		out.Username, out.Password = e.Username, pw
	}
	out.LeaseTTL = f.duration(ps, at.with("lease_ttl"), e.LeaseTTL, DefaultEtcdLeaseTTL)
	if out.LeaseTTL < time.Second {
		ps.add(at.with("lease_ttl"), "use at least 1s; etcd rounds up to whole seconds and to its own minimum (2s by default)",
			"store.etcd.lease_ttl: %v is under a second", out.LeaseTTL)
		out.LeaseTTL = DefaultEtcdLeaseTTL
	}
	out.DialTimeout = f.duration(ps, at.with("dial_timeout"), e.DialTimeout, DefaultEtcdDialTimeout)
	return out
}

// loopbackEndpoint reports whether ep (a URL or host:port) names this
// machine: localhost or a loopback IP.
func loopbackEndpoint(ep string) bool {
	hostport := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return false
		}
		hostport = u.Host
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// checkEndpoint returns why ep is not an etcd client endpoint, or "".
func checkEndpoint(ep string, tls bool) string {
	if !strings.Contains(ep, "://") {
		if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
			return "is neither a URL nor host:port"
		}
		return ""
	}
	u, err := url.Parse(ep)
	switch {
	case err != nil || u.Host == "":
		return "is not a URL with a host"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("has scheme %q; etcd endpoints are http:// or https://", u.Scheme)
	case u.Scheme == "http" && tls:
		return "is plain http:// while store.etcd.tls is set"
	}
	return ""
}
