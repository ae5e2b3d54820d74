package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/eddy-stream/eddy/connectors"
)

// Conn is where a Kafka cluster is and how to talk to it: the part of a
// kafka:// URI that sources, sinks and the CLI share.
type Conn struct {
	Brokers []string
	Topics  []string
	// TLS is nil for plaintext.
	TLS *tls.Config
	// SASL mechanism ("", "plain", "scram-sha-256", "scram-sha-512") and
	// credentials.
	SASL, User, Password string
}

// connParams are the URI parameters ParseConn reads.
var connParams = []string{"tls", "tls-ca", "tls-insecure", "sasl", "user", "password"}

// ParseConn reads the brokers, topics and security parameters of t:
// tls=true, tls-ca=FILE, tls-insecure=true, sasl=plain|scram-sha-256|
// scram-sha-512 with user= and password= (or $EDDY_KAFKA_PASSWORD).
func ParseConn(t connectors.Target) (Conn, error) {
	var c Conn
	if t.Host == "" {
		return c, fmt.Errorf("no broker: write kafka://HOST:PORT/TOPIC")
	}
	for _, b := range strings.Split(t.Host, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if !strings.Contains(b, ":") {
				b += ":9092"
			}
			c.Brokers = append(c.Brokers, b)
		}
	}
	for _, tp := range strings.Split(strings.Trim(t.Path, "/"), ",") {
		if tp = strings.TrimSpace(tp); tp != "" {
			if err := validTopic(tp); err != nil {
				return c, err
			}
			c.Topics = append(c.Topics, tp)
		}
	}
	p := t.Params
	if p.Get("tls") == "true" || p.Get("tls-ca") != "" || p.Get("tls-insecure") == "true" {
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: p.Get("tls-insecure") == "true"}
		if ca := p.Get("tls-ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return c, fmt.Errorf("tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return c, fmt.Errorf("tls-ca=%s holds no PEM certificate", ca)
			}
			c.TLS.RootCAs = pool
		}
	}
	var err error
	if c.SASL, err = t.Choice("sasl", "", "plain", "scram-sha-256", "scram-sha-512"); err != nil {
		return c, err
	}
	c.User, c.Password = p.Get("user"), p.Get("password")
	if c.SASL == "" && (c.User != "" || c.Password != "") {
		// Without sasl= they would be dropped, and the client would talk
		// to the broker unauthenticated.
		return c, fmt.Errorf("user= and password= are a SASL login: add sasl=plain, sasl=scram-sha-256 or sasl=scram-sha-512")
	}
	if c.Password == "" {
		c.Password = os.Getenv("EDDY_KAFKA_PASSWORD")
	}
	if c.SASL != "" && c.User == "" {
		return c, fmt.Errorf("sasl=%s needs user= (and password= or $EDDY_KAFKA_PASSWORD)", c.SASL)
	}
	return c, nil
}

func validTopic(tp string) error {
	if len(tp) > 249 {
		return fmt.Errorf("topic name %.20q… is longer than Kafka's 249 characters", tp)
	}
	for _, r := range tp {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q: Kafka allows only letters, digits, '.', '_' and '-'", tp)
		}
	}
	return nil
}

// Opts are the franz-go options that reach the cluster: seeds, TLS, SASL,
// and retry settings that wait through a broker restart.
func (c Conn) Opts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DialTimeout(5 * time.Second),
		kgo.RetryBackoffFn(backoff),
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	switch c.SASL {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.User, Pass: c.Password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Password}.AsSha512Mechanism()))
	}
	return opts
}

// backoff grows from 100ms to 5s, so a stopped broker is retried calmly.
func backoff(tries int) time.Duration {
	d := 100 * time.Millisecond << min(tries, 6)
	return min(d, 5*time.Second)
}

// Check connects to the cluster with a client of its own and returns one
// clear error (see [Conn.Explain]) when it can't: unreachable, TLS or SASL
// settings the listener refuses, or a topic of c.Topics missing. Clients
// retry some of these for ever; Check gives up after 15s at most.
func (c Conn) Check(ctx context.Context) error {
	cl, err := c.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return checkTopics(ctx, kadm.NewClient(cl), c)
}

// Explain says which cluster err came from and, when its cause is one the
// URI can fix, what to change: an unreachable broker, a certificate the
// client doesn't trust, a login the broker refuses, TLS or SASL on one side
// only.
func (c Conn) Explain(err error) error {
	return fmt.Errorf("kafka %s: %w%s", strings.Join(c.Brokers, ","), err, c.hint(err))
}

func (c Conn) hint(err error) string {
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case errors.As(err, &unknownCA) && c.TLS != nil && c.TLS.RootCAs != nil:
		return " (the CA in tls-ca= did not sign the broker's certificate)"
	case errors.As(err, &unknownCA):
		return " (give the CA that signed the broker's certificate with tls-ca=FILE)"
	case errors.As(err, &badName):
		return " (the broker's certificate is not for the address in the URI: use a name or address it lists)"
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf(" (check user=%s and the password for sasl=%s)", c.User, c.SASL)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf(" (the listener does not offer sasl=%s)", c.SASL)
	case errors.Is(err, kerr.IllegalSaslState):
		return " (the listener takes no SASL login: drop sasl=, or use the broker's SASL listener)"
	case strings.Contains(msg, "plaintext connection speaking to a tls endpoint"):
		return " (the listener takes TLS: add tls=true, or tls-ca=FILE for a private CA)"
	case c.TLS != nil && strings.Contains(msg, "using TLS when the broker is not expecting it"):
		return " (the listener takes no TLS: drop tls=, or use the broker's TLS listener)"
	case c.SASL == "" && strings.Contains(msg, "is SASL missing?"):
		return " (the listener wants a SASL login: add sasl=, user= and password=)"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout") || errors.Is(err, context.DeadlineExceeded):
		return " (is it running? `just kafka-up` starts the local one)"
	}
	return ""
}

// NewClient connects with c's settings plus opts.
func (c Conn) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(c.Opts(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(c.Brokers, ","), err)
	}
	return cl, nil
}
