// Command check tells whether a local test server really answers: it is what
// services/kafka.sh and services/cassandra.sh poll while a server starts.
//
//	go run ./services/check kafka 127.0.0.1:9092
//	go run ./services/check kafka 127.0.0.1:9094 tls-ca=.cache/kafka/tls/ca.pem sasl=scram-sha-512 user=U password=P
//	go run ./services/check cassandra 127.0.0.1:9042
//
// It exits 0 when the server did real work (Kafka: a record produced and read
// back; Cassandra: a CQL query answered), and 1 with the reason on stderr.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// checkTopic is the one topic the Kafka check writes to; tests never use it.
const checkTopic = "eddy-services-check"

func main() {
	if len(os.Args) < 3 || os.Args[1] != "kafka" && len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: check kafka|cassandra HOST:PORT[,HOST:PORT...] [kafka: tls-ca=FILE sasl=plain|scram-sha-512 user=U password=P]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	addrs := strings.Split(os.Args[2], ",")
	var err error
	switch os.Args[1] {
	case "kafka":
		var opts []kgo.Opt
		if opts, err = kafkaOpts(addrs, os.Args[3:]); err == nil {
			err = checkKafka(ctx, opts)
		}
	case "cassandra":
		err = checkCassandra(ctx, addrs)
	default:
		err = fmt.Errorf("unknown server %q, want kafka or cassandra", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "check %s %s: %v\n", os.Args[1], os.Args[2], err)
		os.Exit(1)
	}
}

// kafkaOpts are the client options for brokers and the security settings
// in args (KEY=VALUE): tls-ca=FILE (TLS verified with that CA), sasl=plain or
// scram-sha-512 with user= and password=.
func kafkaOpts(brokers, args []string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	kv := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k != "tls-ca" && k != "sasl" && k != "user" && k != "password" {
			return nil, fmt.Errorf("%q: want tls-ca=, sasl=, user= or password=", a)
		}
		kv[k] = v
	}
	if ca := kv["tls-ca"]; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", ca)
		}
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	switch kv["sasl"] {
	case "":
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: kv["user"], Pass: kv["password"]}.AsMechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: kv["user"], Pass: kv["password"]}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("sasl=%q: want plain or scram-sha-512", kv["sasl"])
	}
	return opts, nil
}

// checkKafka creates the check topic if needed, produces one record and
// consumes it back from the offset the broker gave it.
func checkKafka(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer cl.Close()

	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopic(ctx, 1, 1, nil, checkTopic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", checkTopic, err)
	}
	if res.Err != nil && !errors.Is(res.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", checkTopic, res.Err)
	}

	want := fmt.Sprintf("check-%d", time.Now().UnixNano())
	rec := &kgo.Record{Topic: checkTopic, Partition: 0, Value: []byte(want)}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", checkTopic, err)
	}

	cons, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			checkTopic: {0: kgo.NewOffset().At(rec.Offset)},
		}),
	)...)
	if err != nil {
		return fmt.Errorf("new consumer: %w", err)
	}
	defer cons.Close()
	for {
		fetches := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume %s offset %d: %w", checkTopic, rec.Offset, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume %s: %w", checkTopic, errs[0].Err)
		}
		for _, r := range fetches.Records() {
			if r.Offset == rec.Offset {
				if string(r.Value) != want {
					return fmt.Errorf("consume %s offset %d: got %q, want %q", checkTopic, r.Offset, r.Value, want)
				}
				return nil
			}
		}
	}
}

// checkCassandra opens a session and asks the node for its version.
func checkCassandra(ctx context.Context, hosts []string) error {
	cluster := gocql.NewCluster(hosts...)
	cluster.Timeout = 5 * time.Second
	cluster.ConnectTimeout = 5 * time.Second
	cluster.DisableInitialHostLookup = true
	sess, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer sess.Close()
	var version string
	if err := sess.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
		return fmt.Errorf("select release_version: %w", err)
	}
	fmt.Println("cassandra", version)
	return nil
}
