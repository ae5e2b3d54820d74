package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
)

// kafkaTarget parses a kafka:// URI, or a bare topic name with the brokers
// of --brokers.
func kafkaTarget(arg, brokers string) (connectors.Target, kafka.Conn, error) {
	if !strings.Contains(arg, "://") {
		arg = "kafka://" + brokers + "/" + arg
	}
	t, err := connectors.Parse(arg)
	if err != nil {
		return t, kafka.Conn{}, err
	}
	if t.Scheme != "kafka" {
		return t, kafka.Conn{}, fmt.Errorf("%s is not a kafka:// URI", arg)
	}
	c, err := kafka.ParseConn(t)
	return t, c, err
}

func defaultBrokers() string {
	if b := os.Getenv("EDDY_KAFKA_BROKERS"); b != "" {
		return b
	}
	return "127.0.0.1:9092"
}

// partitionCollector is a Listener for commands that read a source
// themselves, outside the engine.
type partitionCollector struct {
	mu    sync.Mutex
	parts []connectors.Partition
}

func (c *partitionCollector) Assign(p connectors.Partition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parts = append(c.parts, p)
}
func (c *partitionCollector) Revoke(string) {}
func (c *partitionCollector) Lose(string)   {}

func produceCmd() *cobra.Command {
	var follow, from, key, offsets string
	var untilIdle bool
	cmd := &cobra.Command{
		Use:   "produce kafka://HOST:PORT/TOPIC [--follow FILE | --from DIR]",
		Short: "write lines to a Kafka topic: from stdin, a directory, or a growing file",
		Long: `Write one record per line to a topic, as Kafka's console producer and Kafka Connect's file
source do. Lines come from stdin, every file of --from DIR, or --follow FILE, which follows a
growing file like tail -F (through rotation and truncation) until interrupted. With --key
FIELD each line is read as a JSON object and that field is the record key, so records of
one key go to one partition. With --offsets FILE the position reached in the input is
kept there after every acknowledged batch, and a restart goes on from it.`,
		Example: `  eddy gen tshark --count 1000 --out en0.log
  eddy produce kafka://127.0.0.1:9092/tshark --follow en0.log --offsets en0.offsets --until-idle
  eddy gen netflow --count 100000 --files 4 --out flows && eddy produce kafka://127.0.0.1:9092/flows --from flows --key dstdevice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow != "" && from != "" {
				return fmt.Errorf("give --follow FILE or --from DIR, not both")
			}
			src := "stdin"
			switch {
			case follow != "":
				src = "file:" + follow
			case from != "":
				src = "dir:" + from
				untilIdle = true
			}
			return produce(cmd.Context(), args[0], src, key, offsets, untilIdle)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&follow, "follow", "", "follow a growing file like tail -F")
	fl.StringVar(&from, "from", "", "write every file of a directory, in name order")
	fl.StringVar(&key, "key", "", "read lines as JSON and key records by this field")
	fl.StringVar(&offsets, "offsets", "", "keep the input position in this file; a restart resumes from it")
	fl.BoolVar(&untilIdle, "until-idle", false, "with --follow: stop once the file is read to its end")
	return cmd
}

func produce(ctx context.Context, uri, srcURI, keyField, offsets string, untilIdle bool) error {
	t, conn, err := kafkaTarget(uri, defaultBrokers())
	if err != nil {
		return err
	}
	if len(conn.Topics) != 1 {
		return fmt.Errorf("produce writes one topic: kafka://HOST:PORT/TOPIC")
	}
	_ = t
	// The producer would retry a refused login or a missing topic until
	// interrupted; say why at once instead.
	if err := conn.Check(ctx); err != nil {
		return err
	}
	src, err := connectors.OpenSource(srcURI, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	var parts partitionCollector
	if err := src.Start(ctx, &parts); err != nil {
		return err
	}
	if len(parts.parts) != 1 {
		return fmt.Errorf("%s: want one partition, got %d", srcURI, len(parts.parts))
	}
	p := parts.parts[0]
	if offsets != "" {
		if pos, err := os.ReadFile(offsets); err == nil && len(pos) > 0 {
			if err := p.Seek(pos); err != nil {
				return fmt.Errorf("resume from %s: %w", offsets, err)
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	cl, err := conn.NewClient(kgo.DefaultProduceTopic(conn.Topics[0]), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		mu      sync.Mutex
		prodErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if prodErr == nil {
				prodErr = err
			}
			mu.Unlock()
		}
	}
	var parser fastjson.Parser
	var n int64
	for {
		b, err := p.Read(ctx)
		if errors.Is(err, connectors.ErrEndOfInput) || (err != nil && ctx.Err() != nil) {
			break
		}
		if err != nil {
			return err
		}
		for i, r := range b.Records {
			if r.Err != nil {
				// Value is only a preview: never send part of a record.
				return fmt.Errorf("%s: %w", b.Locate(i), r.Err)
			}
			rec := &kgo.Record{Value: append([]byte(nil), r.Value...)}
			if keyField != "" {
				if v, err := parser.ParseBytes(r.Value); err == nil {
					if f := v.Get(keyField); f != nil {
						if s, err := f.StringBytes(); err == nil {
							rec.Key = append([]byte(nil), s...)
						} else {
							rec.Key = []byte(f.String())
						}
					}
				}
			}
			cl.Produce(ctx, rec, promise)
		}
		n += int64(len(b.Records))
		if len(b.Records) > 0 || b.CaughtUp {
			if err := cl.Flush(ctx); err != nil {
				break
			}
			mu.Lock()
			perr := prodErr
			mu.Unlock()
			if perr != nil {
				return fmt.Errorf("produce to %s: %w", conn.Topics[0], perr)
			}
			if offsets != "" && b.End != nil {
				if err := os.WriteFile(offsets, b.End, 0o644); err != nil {
					return err
				}
			}
		}
		if b.CaughtUp && untilIdle {
			break
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return err
	}
	if prodErr != nil {
		return fmt.Errorf("produce to %s: %w", conn.Topics[0], prodErr)
	}
	fmt.Fprintf(os.Stderr, "produced %d records to %s\n", n, conn.Topics[0])
	return nil
}

func consumeCmd() *cobra.Command {
	var fromBeginning, readCommitted, untilIdle, keys bool
	var max int64
	cmd := &cobra.Command{
		Use:   "consume kafka://HOST:PORT/TOPIC",
		Short: "print a topic's records, one value a line",
		Long: `Print the values of a topic's records to stdout, one a line (with --keys, KEY<tab>VALUE), as
Kafka's console consumer does. It starts at the end unless --from-beginning, reads every
partition without joining a group, and with --read-committed skips records of aborted and
open transactions (what a downstream consumer of eddy's exactly-once output sees).`,
		Example: `  eddy gen tshark --count 100 --out - | eddy produce kafka://127.0.0.1:9092/packets
  eddy consume kafka://127.0.0.1:9092/packets --from-beginning --read-committed --until-idle`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, conn, err := kafkaTarget(args[0], defaultBrokers())
			if err != nil {
				return err
			}
			return consume(cmd.Context(), conn, fromBeginning, readCommitted, untilIdle, keys, max)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&fromBeginning, "from-beginning", false, "start at the oldest record instead of the end")
	fl.BoolVar(&readCommitted, "read-committed", false, "only records of committed transactions")
	fl.BoolVar(&untilIdle, "until-idle", false, "stop at the end the topic had when consume started")
	fl.BoolVar(&keys, "keys", false, "print KEY<tab>VALUE")
	fl.Int64Var(&max, "max", 0, "stop after N records (0: no limit)")
	return cmd
}

func consume(ctx context.Context, conn kafka.Conn, fromBeginning, readCommitted, untilIdle, keys bool, max int64) error {
	start := kgo.NewOffset().AtEnd()
	if fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	iso := kgo.ReadUncommitted()
	if readCommitted {
		iso = kgo.ReadCommitted()
	}
	cl, err := conn.NewClient(kgo.ConsumeTopics(conn.Topics...), kgo.ConsumeResetOffset(start), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// The ends at the start, for --until-idle; also checks the topics.
	var ends kadm.ListedOffsets
	if readCommitted {
		ends, err = adm.ListCommittedOffsets(ctx, conn.Topics...)
	} else {
		ends, err = adm.ListEndOffsets(ctx, conn.Topics...)
	}
	if err != nil {
		return conn.Explain(err)
	}
	if err := ends.Error(); err != nil {
		return conn.Explain(err)
	}
	remaining := map[string]int64{} // "topic/p" → end not reached yet
	if untilIdle && fromBeginning {
		starts, err := adm.ListStartOffsets(ctx, conn.Topics...)
		if err != nil {
			return err
		}
		ends.Each(func(o kadm.ListedOffset) {
			if s, _ := starts.Lookup(o.Topic, o.Partition); o.Offset > s.Offset {
				remaining[o.Topic+"/"+strconv.Itoa(int(o.Partition))] = o.Offset
			}
		})
	}
	if untilIdle && (!fromBeginning || len(remaining) == 0) {
		return nil
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer w.Flush()
	var n int64
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "eddy: consume %s/%d: %v\n", t, p, err)
		})
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if stop {
				return
			}
			id := r.Topic + "/" + strconv.Itoa(int(r.Partition))
			if end, ok := remaining[id]; ok && r.Offset+1 >= end {
				delete(remaining, id)
			}
			if r.Attrs.IsControl() {
				return
			}
			if keys {
				w.Write(r.Key)
				w.WriteByte('\t')
			}
			w.Write(r.Value)
			w.WriteByte('\n')
			n++
			if max > 0 && n >= max {
				stop = true
			}
		})
		if stop || (untilIdle && len(remaining) == 0) {
			return nil
		}
	}
}

func topicsCmd() *cobra.Command {
	var brokers string
	cmd := &cobra.Command{Use: "topics", Short: "list, create, describe and delete Kafka topics"}
	cmd.PersistentFlags().StringVar(&brokers, "brokers", "", "HOST:PORT[,HOST:PORT] of the cluster (default: $EDDY_KAFKA_BROKERS, else 127.0.0.1:9092)")
	admin := func(arg string) (*kadm.Client, kafka.Conn, func(), error) {
		_, conn, err := kafkaTarget(arg, first(brokers, defaultBrokers()))
		if err != nil {
			return nil, conn, nil, err
		}
		cl, err := conn.NewClient()
		if err != nil {
			return nil, conn, nil, err
		}
		return kadm.NewClient(cl), conn, cl.Close, nil
	}
	list := &cobra.Command{
		Use:   "list [kafka://HOST:PORT?PARAMS]",
		Short: "list the topics with their partition counts",
		Long: `List the topics with their partition counts. The cluster is --brokers, or the URI given,
which may carry TLS and SASL parameters as a source's does (docs/kafka.md).`,
		Example: `  eddy topics list --brokers 127.0.0.1:9092
  EDDY_KAFKA_PASSWORD=$EDDY_KAFKA_SCRAM_PASSWORD eddy topics list "kafka://$EDDY_KAFKA_SECURE_BROKERS?tls-ca=$EDDY_KAFKA_CA&sasl=scram-sha-512&user=$EDDY_KAFKA_SCRAM_USER"
      # the local broker's TLS and SCRAM listener, after source services/env.sh (docs/services.md)`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uri := ""
			if len(args) == 1 {
				if !strings.Contains(args[0], "://") {
					return fmt.Errorf("topics list takes a kafka:// URI, not %q (--brokers HOST:PORT names the cluster too)", args[0])
				}
				uri = args[0]
			}
			adm, conn, done, err := admin(uri)
			if err != nil {
				return err
			}
			defer done()
			tds, err := adm.ListTopics(cmd.Context())
			if err != nil {
				return conn.Explain(err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITIONS\tREPLICAS")
			for _, td := range tds.Sorted() {
				fmt.Fprintf(w, "%s\t%d\t%d\n", td.Topic, len(td.Partitions), td.Partitions.NumReplicas())
			}
			return w.Flush()
		},
	}
	var partitions int32
	var replicas int16
	var configs []string
	create := &cobra.Command{
		Use:   "create NAME --partitions N",
		Short: "create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, conn, done, err := admin(args[0])
			if err != nil {
				return err
			}
			defer done()
			if len(conn.Topics) != 1 {
				return fmt.Errorf("create one topic at a time")
			}
			cfg := map[string]*string{}
			for _, kv := range configs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--config %q: want KEY=VALUE", kv)
				}
				cfg[k] = &v
			}
			res, err := adm.CreateTopic(cmd.Context(), partitions, replicas, cfg, conn.Topics[0])
			if err == nil {
				err = res.Err
			}
			if err != nil {
				return fmt.Errorf("create topic %s: %w", conn.Topics[0], conn.Explain(err))
			}
			if err := waitForTopic(cmd.Context(), adm, conn.Topics[0], int(partitions)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s with %d partitions\n", conn.Topics[0], partitions)
			return nil
		},
	}
	create.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	create.Flags().Int16Var(&replicas, "replication-factor", -1, "replicas per partition (-1: the broker's default)")
	create.Flags().StringArrayVar(&configs, "config", nil, "topic config KEY=VALUE, repeatable (cleanup.policy=compact)")
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "show a topic's partitions: leader, start and end offsets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, conn, done, err := admin(args[0])
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			md, err := adm.Metadata(ctx, conn.Topics...)
			if err != nil {
				return conn.Explain(err)
			}
			starts, err := adm.ListStartOffsets(ctx, conn.Topics...)
			if err != nil {
				return err
			}
			ends, err := adm.ListEndOffsets(ctx, conn.Topics...)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TOPIC\tPARTITION\tLEADER\tREPLICAS\tSTART\tEND")
			for _, name := range conn.Topics {
				td, ok := md.Topics[name]
				if !ok || td.Err != nil {
					return fmt.Errorf("topic %s: %v", name, td.Err)
				}
				ps := td.Partitions.Sorted()
				sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
				for _, p := range ps {
					s, _ := starts.Lookup(name, p.Partition)
					e, _ := ends.Lookup(name, p.Partition)
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", name, p.Partition, p.Leader, len(p.Replicas), s.Offset, e.Offset)
				}
			}
			return w.Flush()
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME...",
		Short: "delete topics",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			adm, conn, done, err := admin(strings.Join(args, ","))
			if err != nil {
				return err
			}
			defer done()
			res, err := adm.DeleteTopics(cmd.Context(), conn.Topics...)
			if err != nil {
				return conn.Explain(err)
			}
			var errs []error
			for _, r := range res.Sorted() {
				if r.Err != nil {
					errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
				}
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			return waitForTopicsGone(cmd.Context(), adm, conn.Topics)
		},
	}
	cmd.AddCommand(list, create, describe, del)
	return cmd
}
