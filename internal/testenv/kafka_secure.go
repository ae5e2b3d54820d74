package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The variables that say where the broker's SASL_SSL listener is and which
// logins it takes (services/env.sh).
const (
	KafkaSecureEnv        = "EDDY_KAFKA_SECURE_BROKERS"
	KafkaCAEnv            = "EDDY_KAFKA_CA"
	KafkaScramUserEnv     = "EDDY_KAFKA_SCRAM_USER"
	KafkaScramPasswordEnv = "EDDY_KAFKA_SCRAM_PASSWORD"
	KafkaPlainUserEnv     = "EDDY_KAFKA_PLAIN_USER"
	KafkaPlainPasswordEnv = "EDDY_KAFKA_PLAIN_PASSWORD"
)

// SecureKafka is a listener that takes only TLS and SASL, and the logins it
// takes.
type SecureKafka struct {
	Brokers []string
	// CA is the PEM file of the CA that signed the broker's certificate.
	CA string
	// Scram logs in with SCRAM-SHA-512, Plain with PLAIN.
	Scram, Plain Login
}

// Login is one SASL login: the mechanism as eddy's sasl= parameter spells
// it, the user and the password.
type Login struct{ Mechanism, User, Password string }

// Logins are the listener's logins, SCRAM first.
func (k SecureKafka) Logins() []Login { return []Login{k.Scram, k.Plain} }

// KafkaSecure returns the SASL_SSL listener of EDDY_KAFKA_SECURE_BROKERS with
// its CA (EDDY_KAFKA_CA) and logins (EDDY_KAFKA_SCRAM_USER/_PASSWORD,
// EDDY_KAFKA_PLAIN_USER/_PASSWORD). It skips the test, naming the recipe,
// when EDDY_KAFKA_SECURE_BROKERS is unset; when it is set, a missing
// variable or an unreadable CA fails the test.
func KafkaSecure(t testing.TB) SecureKafka {
	t.Helper()
	var k SecureKafka
	for _, a := range strings.Split(os.Getenv(KafkaSecureEnv), ",") {
		if a = strings.TrimSpace(a); a != "" {
			k.Brokers = append(k.Brokers, a)
		}
	}
	if len(k.Brokers) == 0 {
		t.Skipf("%s is unset: run `just kafka-up && source services/env.sh` (or `just itest`) to run this test against a real broker's SASL_SSL listener", KafkaSecureEnv)
		return k
	}
	get := func(env string) string {
		v := os.Getenv(env)
		if v == "" {
			t.Fatalf("%s is set but %s is not: source services/env.sh, which sets both", KafkaSecureEnv, env)
		}
		return v
	}
	k.CA = get(KafkaCAEnv)
	k.Scram = Login{"scram-sha-512", get(KafkaScramUserEnv), get(KafkaScramPasswordEnv)}
	k.Plain = Login{"plain", get(KafkaPlainUserEnv), get(KafkaPlainPasswordEnv)}
	if _, err := os.Stat(k.CA); err != nil {
		t.Fatalf("%s: %v (services/kafka.sh up makes it)", KafkaCAEnv, err)
	}
	return k
}

// Params are the kafka:// URI parameters that log in with l: tls-ca=, sasl=,
// user= and password=.
func (k SecureKafka) Params(l Login) string {
	return url.Values{"tls-ca": {k.CA}, "sasl": {l.Mechanism}, "user": {l.User}, "password": {l.Password}}.Encode()
}

// Opts are franz-go options that reach the listener and log in with l,
// built here rather than by eddy, so tests check eddy against them.
func (k SecureKafka) Opts(t testing.TB, l Login) []kgo.Opt {
	t.Helper()
	pem, err := os.ReadFile(k.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no PEM certificate", k.CA)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})}
	switch l.Mechanism {
	case "plain":
		return append(opts, kgo.SASL(plain.Auth{User: l.User, Pass: l.Password}.AsMechanism()))
	case "scram-sha-512":
		return append(opts, kgo.SASL(scram.Auth{User: l.User, Pass: l.Password}.AsSha512Mechanism()))
	}
	t.Fatalf("testenv: unknown SASL mechanism %q", l.Mechanism)
	return nil
}

// NewTopic creates a topic through the listener (logged in with SCRAM), as
// [NewTopic] does on a plaintext one.
func (k SecureKafka) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	return newTopic(t, k.Opts(t, k.Scram), k.Brokers, partitions)
}

// UnknownCA writes a CA certificate of its own, which signed nothing any
// broker holds, to a PEM file of the test's and returns its path: what a
// client configured with the wrong CA trusts.
func UnknownCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "eddy test: a CA no broker uses"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "unknown-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
