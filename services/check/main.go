// Command check tells whether a local test server really answers: it is what
// services/kafka.sh and services/cassandra.sh poll while a server starts.
//
//	go run ./services/check kafka 127.0.0.1:9092
//	go run ./services/check cassandra 127.0.0.1:9042
//
// It exits 0 when the server did real work (Kafka: a record produced and read
// back; Cassandra: a CQL query answered), and 1 with the reason on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkTopic is the one topic the Kafka check writes to; tests never use it.
const checkTopic = "eddy-services-check"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: check kafka|cassandra HOST:PORT[,HOST:PORT...]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	addrs := strings.Split(os.Args[2], ",")
	var err error
	switch os.Args[1] {
	case "kafka":
		err = checkKafka(ctx, addrs)
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

// checkKafka creates the check topic if needed, produces one record and
// consumes it back from the offset the broker gave it.
func checkKafka(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
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

	cons, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			checkTopic: {0: kgo.NewOffset().At(rec.Offset)},
		}),
	)
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
