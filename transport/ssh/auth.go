package ssh

import (
	"errors"
	"net"
	"os"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"drover"
)

// clientConfig is the SSH client configuration for one connection: user,
// keys (identity file, then ssh-agent) and the strict host key check.
func (t *Transport) clientConfig(name, addr string) (*gossh.ClientConfig, error) {
	cb, algos, err := t.keys.callback(name, addr)
	if err != nil {
		return nil, err
	}
	auth, err := t.authMethods()
	if err != nil {
		return nil, err
	}
	return &gossh.ClientConfig{
		User:              t.user(),
		Auth:              auth,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		// The connect timeout is enforced on the connection itself (see
		// connect); this is a second bound on the handshake.
		Timeout: t.Config.ConnectTimeout,
	}, nil
}

// authMethods offers the identity file's key and the agent's keys. The
// identity is read for every connection so a key rotated on disk is
// picked up by the next one; the agent is asked lazily, at
// authentication time.
func (t *Transport) authMethods() ([]gossh.AuthMethod, error) {
	var signers []gossh.Signer
	if t.Config.Identity != "" {
		b, err := os.ReadFile(t.Config.Identity)
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "read ssh.identity: %v", err).WithHint("point ssh.identity at a private key file, or leave it out to use ssh-agent")
		}
		s, err := gossh.ParsePrivateKey(b)
		var pm *gossh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, drover.Errorf(drover.EINVALID, "ssh.identity %s is protected by a passphrase", t.Config.Identity).
				WithHint("load it into ssh-agent (ssh-add " + drover.ShellQuote(t.Config.Identity) + ") and run drover with SSH_AUTH_SOCK set; drover never asks for a passphrase")
		}
		if err != nil {
			return nil, drover.Errorf(drover.EINVALID, "ssh.identity %s: %v", t.Config.Identity, err)
		}
		signers = append(signers, s)
	}
	sock := t.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if len(signers) == 0 && sock == "" {
		return nil, drover.Errorf(drover.EINVALID, "no SSH key: ssh.identity is not set and there is no ssh-agent (SSH_AUTH_SOCK)").
			WithHint("set ssh.identity in drover.yaml, or start ssh-agent and ssh-add your key")
	}
	cb := func() ([]gossh.Signer, error) {
		out := append([]gossh.Signer(nil), signers...)
		if sock == "" {
			return out, nil
		}
		as, err := t.agentSigners(sock)
		if err != nil {
			if len(out) > 0 {
				return out, nil // the identity file may be enough
			}
			return nil, err
		}
		return append(out, as...), nil
	}
	return []gossh.AuthMethod{gossh.PublicKeysCallback(cb)}, nil
}

// agentSigners returns the agent's keys. One connection to the agent
// serves every handshake (the agent client is safe for concurrent use);
// it signs during the handshake, after this returns, so it stays open
// until the Transport is closed. A connection that failed is replaced.
func (t *Transport) agentSigners(sock string) ([]gossh.Signer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		if t.agentConn == nil {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return nil, err
			}
			t.agentConn, t.agent = c, agent.NewClient(c)
		}
		s, err := t.agent.Signers()
		if err == nil {
			return s, nil
		}
		t.agentConn.Close()
		t.agentConn, t.agent = nil, nil
		if attempt == 1 {
			return nil, err
		}
	}
	return nil, nil
}
