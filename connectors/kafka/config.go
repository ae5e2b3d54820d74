package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

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

// NewClient connects with c's settings plus opts.
func (c Conn) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(c.Opts(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(c.Brokers, ","), err)
	}
	return cl, nil
}
