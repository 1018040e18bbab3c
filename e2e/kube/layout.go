package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// layout is the control plane's directory: keys, certificates, the admin token, the
// audit policy, the kubeconfig, logs and state files.
type layout struct{ dir string }

func (d *layout) path(name string) string { return filepath.Join(d.dir, name) }

// auditPolicy records every write (create/update/patch/delete) with who made it, and
// nothing else; tests read audit.log to prove a component wrote nothing.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
`

// writeFiles creates the CA, the serving certificate for 127.0.0.1/localhost, the
// service-account signing key, the static admin token and the audit policy.
func (d *layout) writeFiles() (adminToken string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gatehouse-kube-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", err
	}
	servingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	servingTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	servingDER, err := x509.CreateCertificate(rand.Reader, servingTemplate, caCert, &servingKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	tokenBytes := make([]byte, 24)
	if _, err := rand.Read(tokenBytes); err != nil {
		return "", err
	}
	adminToken = hex.EncodeToString(tokenBytes)

	files := map[string][]byte{
		"ca.crt":            pemBlock("CERTIFICATE", caDER),
		"serving.crt":       pemBlock("CERTIFICATE", servingDER),
		"sa.key":            pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"tokens.csv":        []byte(adminToken + ",admin,admin,system:masters\n"),
		"audit-policy.yaml": []byte(auditPolicy),
	}
	servingKeyDER, err := x509.MarshalECPrivateKey(servingKey)
	if err != nil {
		return "", err
	}
	files["serving.key"] = pemBlock("EC PRIVATE KEY", servingKeyDER)
	for name, data := range files {
		if err := os.WriteFile(d.path(name), data, 0o600); err != nil {
			return "", err
		}
	}
	return adminToken, nil
}

// writeKubeconfig writes DIR/kubeconfig for the admin user (static token).
func (d *layout) writeKubeconfig(server, token string) error {
	ca, err := os.ReadFile(d.path("ca.crt"))
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: gatehouse-kube
    cluster:
      server: %s
      certificate-authority-data: %s
users:
  - name: admin
    user:
      token: %s
contexts:
  - name: gatehouse-kube
    context: {cluster: gatehouse-kube, user: admin, namespace: default}
current-context: gatehouse-kube
`, server, base64.StdEncoding.EncodeToString(ca), token)
	return os.WriteFile(d.path("kubeconfig"), []byte(config), 0o600)
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
