package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"

	"drover"
)

// This file is who may do what. A request carries a bearer token; the
// server keeps only the sha256 of each token it issued, in a tokens file
// only its owner may read, and compares in constant time. Every token has
// a role and may be scoped to some services:
//
//	viewer    reads status, history, timelines, the event stream
//	deployer  also starts deploys and rollbacks, approves and aborts
//	admin     everything, on every service whatever its scope
//
// There is no anonymous access to /api: a change is always made by a named
// token, and the name goes into the deploy record ("token:alice").

// Roles.
const (
	RoleViewer   = "viewer"
	RoleDeployer = "deployer"
	RoleAdmin    = "admin"
)

var roleRank = map[string]int{RoleViewer: 1, RoleDeployer: 2, RoleAdmin: 3}

// Token is one entry of the tokens file: never the token itself, only its
// hash.
type Token struct {
	Name     string   `json:"name" yaml:"name"`
	Role     string   `json:"role" yaml:"role"`
	Services []string `json:"services,omitempty" yaml:"services,omitempty"`
	SHA256   string   `json:"sha256" yaml:"sha256"`
}

// tokensFile is the file's shape: {"tokens": [...]}; a bare list is read
// too.
type tokensFile struct {
	Tokens []Token `json:"tokens" yaml:"tokens"`
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// validate checks one entry; where names it for the error.
func (t Token) validate(where string) error {
	switch {
	case !tokenName.MatchString(t.Name):
		return drover.Errorf(drover.EINVALID, "token name %q: want letters, digits, . _ @ - (at most 64)", t.Name).At(where)
	case roleRank[t.Role] == 0:
		return drover.Errorf(drover.EINVALID, "token %s: role %q: want viewer, deployer or admin", t.Name, t.Role).At(where)
	}
	if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
		return drover.Errorf(drover.EINVALID, "token %s: sha256 must be 64 hex digits", t.Name).At(where)
	}
	return nil
}

// HashToken is the hex sha256 of a token, as the tokens file stores it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random token: 32 bytes from crypto/rand, hex,
// with a prefix that makes a leaked one easy to recognize in a scan.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", drover.Errorf(drover.EINTERNAL, "no randomness for a token: %v", err)
	}
	return "drover_" + hex.EncodeToString(b[:]), nil
}

// ReadTokens reads a tokens file. It refuses a file others can read or
// write: the hashes are not the tokens, but a writable file lets anyone
// add an admin, and a readable one invites offline guessing.
func ReadTokens(path string) ([]Token, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, drover.Errorf(drover.EINVALID, "tokens file %s does not exist", path).
				WithHint("create a token first: drover server token create --name NAME --role admin --tokens " + path)
		}
		return nil, drover.Errorf(drover.EINVALID, "tokens file: %v", err)
	}
	if fi.Mode().Perm()&0o027 != 0 {
		return nil, drover.Errorf(drover.EINVALID, "tokens file %s has mode %04o: group-writable or readable by others", path, fi.Mode().Perm()).
			WithHint("chmod 600 " + path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, drover.Errorf(drover.EINVALID, "tokens file: %v", err)
	}
	var list []Token
	if trimmed := strings.TrimSpace(string(b)); trimmed == "" {
		list = nil
	} else if strings.HasPrefix(trimmed, "[") || strings.HasPrefix(trimmed, "-") {
		if err := yaml.UnmarshalWithOptions(b, &list, yaml.Strict()); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "tokens file: %v", err).At(path)
		}
	} else {
		var f tokensFile
		if err := yaml.UnmarshalWithOptions(b, &f, yaml.Strict()); err != nil {
			return nil, drover.Errorf(drover.EINVALID, "tokens file: %v", err).At(path)
		}
		list = f.Tokens
	}
	seen := map[string]bool{}
	for i, t := range list {
		where := fmt.Sprintf("%s: token %d", path, i+1)
		if err := t.validate(where); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, drover.Errorf(drover.EINVALID, "token name %s is used twice", t.Name).At(where)
		}
		seen[t.Name] = true
	}
	return list, nil
}

// tokensLock serializes CreateToken within one process; the rename keeps
// a reader from ever seeing half a file.
var tokensLock sync.Mutex

// CreateToken makes a token for name with role and scope, appends its hash
// to the tokens file (created 0600 when missing) and returns the token:
// the only time it is ever shown.
func CreateToken(path, name, role string, services []string) (string, error) {
	tokensLock.Lock()
	defer tokensLock.Unlock()
	var list []Token
	if _, err := os.Stat(path); err == nil {
		if list, err = ReadTokens(path); err != nil {
			return "", err
		}
	}
	for _, t := range list {
		if t.Name == name {
			return "", drover.Errorf(drover.EINVALID, "a token named %s exists in %s", name, path).
				WithHint("pick another name, or remove the old entry from the file first")
		}
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	t := Token{Name: name, Role: role, Services: services, SHA256: HashToken(tok)}
	if err := t.validate("--name/--role"); err != nil {
		return "", err
	}
	list = append(list, t)
	b, err := json.MarshalIndent(tokensFile{Tokens: list}, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tokens-*")
	if err != nil {
		return "", drover.Errorf(drover.EINVALID, "tokens file: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(append(b, '\n'))
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			return "", drover.Errorf(drover.EINVALID, "tokens file: %v", err)
		}
	} else {
		tmp.Close()
		return "", drover.Errorf(drover.EINVALID, "tokens file: %v", err)
	}
	return tok, nil
}

// Principal is who a request acts as.
type Principal struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Services []string `json:"services"`
}

// User is what deploy records and approvals name.
func (p *Principal) User() string { return "token:" + p.Name }

// can reports whether p may act at least as role on the service key.
func (p *Principal) can(role, key string) bool {
	if roleRank[p.Role] < roleRank[role] {
		return false
	}
	return p.Role == RoleAdmin || key == "" || p.sees(key)
}

// sees reports whether key is in p's scope.
func (p *Principal) sees(key string) bool {
	if p.Role == RoleAdmin || len(p.Services) == 0 {
		return true
	}
	service, _, _ := strings.Cut(key, "/")
	return slices.Contains(p.Services, key) || slices.Contains(p.Services, service)
}

// require returns an EFORBIDDEN error unless p may act as role on key.
func (p *Principal) require(role, key string) error {
	if p.can(role, key) {
		return nil
	}
	if roleRank[p.Role] < roleRank[role] {
		return drover.Errorf(drover.EFORBIDDEN, "token %s is a %s; this needs a %s", p.Name, p.Role, role).
			WithHint("ask an admin for a token with role " + role)
	}
	return drover.Errorf(drover.EFORBIDDEN, "token %s may not act on %s (scope: %s)", p.Name, key, strings.Join(p.Services, ", ")).
		WithHint("ask an admin for a token scoped to " + key)
}

// tokenStore reads the tokens file again whenever it changes, so a token
// created while the server runs works at once and a removed one stops.
type tokenStore struct {
	path string
	mu   sync.Mutex
	mod  [2]int64 // mtime ns, size
	list []Token
}

func newTokenStore(path string) (*tokenStore, error) {
	s := &tokenStore{path: path}
	if _, err := s.tokens(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *tokenStore) tokens() ([]Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, drover.Errorf(drover.EINTERNAL, "tokens file: %v", err)
	}
	mod := [2]int64{fi.ModTime().UnixNano(), fi.Size()}
	if s.list != nil && mod == s.mod {
		return s.list, nil
	}
	list, err := ReadTokens(s.path)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []Token{}
	}
	s.list, s.mod = list, mod
	return list, nil
}

// authenticate finds the token's entry. Every entry is compared, in
// constant time, so the time taken says nothing about which hash came
// close.
func (s *tokenStore) authenticate(token string) (*Principal, error) {
	if token == "" {
		return nil, drover.Errorf(drover.EUNAUTHORIZED, "no token").
			WithHint("send Authorization: Bearer TOKEN (drover: --token or DROVER_TOKEN)")
	}
	list, err := s.tokens()
	if err != nil {
		return nil, err
	}
	got := HashToken(token)
	var found *Token
	for i := range list {
		if subtle.ConstantTimeCompare([]byte(got), []byte(list[i].SHA256)) == 1 {
			found = &list[i]
		}
	}
	if found == nil {
		return nil, drover.Errorf(drover.EUNAUTHORIZED, "the token is not valid").
			WithHint("check --token / DROVER_TOKEN; an admin creates tokens with drover server token create")
	}
	return &Principal{Name: found.Name, Role: found.Role, Services: append([]string{}, found.Services...)}, nil
}

type principalKey struct{}

func principalOf(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// bearer is the request's token: the Authorization header, or for the
// event stream only (EventSource cannot set headers) ?access_token=.
func bearer(r *http.Request, queryOK bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if queryOK {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// authed wraps h so it runs only for a valid token; the principal is in
// the request's context.
func (s *Server) authed(queryOK bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.tokens.authenticate(bearer(r, queryOK))
		if err != nil {
			if drover.ErrorCode(err) == drover.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			}
			s.metrics.authFailures.Inc()
			writeError(w, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}
