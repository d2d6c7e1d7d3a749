package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"drover/internal/etcdtest"
	"drover/store/etcd"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM, under dir.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey, otherCert, otherKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyPEM := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, pub, signer any) (*x509.Certificate, []byte) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, der
	}
	var out pki
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := key()
		c, der := issue(&x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, &k.PublicKey, k)
		return c, k, der
	}
	ca, caKey, caDER := newCA("drover test CA")
	out.ca = write("ca.pem", "CERTIFICATE", caDER)
	sk := key()
	_, der := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &sk.PublicKey, caKey)
	out.serverCert, out.serverKey = write("server.pem", "CERTIFICATE", der), keyPEM("server-key.pem", sk)
	ck := key()
	_, der = issue(&x509.Certificate{Subject: pkix.Name{CommonName: "drover"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &ck.PublicKey, caKey)
	out.clientCert, out.clientKey = write("client.pem", "CERTIFICATE", der), keyPEM("client-key.pem", ck)
	// A client certificate from a CA etcd does not trust.
	other, otherKey, _ := newCA("someone else's CA")
	ok := key()
	_, der = issue(&x509.Certificate{Subject: pkix.Name{CommonName: "intruder"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, other, &ok.PublicKey, otherKey)
	out.otherCert, out.otherKey = write("other.pem", "CERTIFICATE", der), keyPEM("other-key.pem", ok)
	return out
}

// With etcd requiring client certificates, the store works with drover's
// certificate (tls.cert/tls.key) and fails without one, or with one from
// another CA.
func TestEtcdClientCertificateAuth(t *testing.T) {
	p := newPKI(t)
	srv := etcdtest.StartTLS(t, etcdtest.TLS{CA: p.ca, Cert: p.serverCert, Key: p.serverKey})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	try := func(cert, key string) error {
		s, err := etcd.Open(etcd.Options{Endpoints: []string{srv.Endpoint}, CA: p.ca, Cert: cert, Key: key,
			DialTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second})
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.History(ctx, "hello", 1)
		return err
	}
	if err := try(p.clientCert, p.clientKey); err != nil {
		t.Fatalf("with drover's client certificate: %v", err)
	}
	if err := try("", ""); err == nil {
		t.Error("read the store without a client certificate")
	}
	if err := try(p.otherCert, p.otherKey); err == nil {
		t.Error("read the store with a certificate from another CA")
	}
}
