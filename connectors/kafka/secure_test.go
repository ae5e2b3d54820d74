package kafka_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// These tests talk to the broker's SASL_SSL listener (services/kafka.sh):
// TLS verified with the recipe's CA, then a SCRAM-SHA-512 or a PLAIN login.
// What eddy writes is read back, and what eddy reads was written, by
// franz-go clients that testenv configures on its own.

// secureAdmin is an admin client of the listener, closed with the test.
func secureAdmin(t testing.TB, k testenv.SecureKafka) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(k.Opts(t, k.Scram)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// secureRecords reads topic with read_committed until n records came or 20s
// passed.
func secureRecords(t *testing.T, k testenv.SecureKafka, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(k.Opts(t, k.Scram), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				t.Fatalf("consume %s: %v", topic, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func keyedRows(prefix string, n int) []connectors.Row {
	rows := make([]connectors.Row, n)
	for i := range rows {
		k := fmt.Sprintf("%s%d", prefix, i)
		rows[i] = connectors.Row{Key: k, Fields: []connectors.Field{{Name: "k", Value: k}, {Name: "n", Value: int64(i)}}}
	}
	return rows
}

func sortedKeys(recs []*kgo.Record) []string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, string(r.Key))
	}
	slices.Sort(ks)
	return ks
}

func wantKeys(prefix string, n int) []string {
	var ks []string
	for _, r := range keyedRows(prefix, n) {
		ks = append(ks, r.Key)
	}
	slices.Sort(ks)
	return ks
}

// The sink writes over TLS and SASL what an independent consumer reads;
// the source reads what an independent producer wrote.
func TestSecureSinkAndSource(t *testing.T) {
	k := testenv.KafkaSecure(t)
	for _, l := range k.Logins() {
		t.Run(l.Mechanism, func(t *testing.T) {
			out := k.NewTopic(t, 2)
			s, err := connectors.OpenSink(uri(k.Brokers, out, k.Params(l)))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(t.Context(), keyedRows("sink", 50)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			got := secureRecords(t, k, out, 50)
			if !slices.Equal(sortedKeys(got), wantKeys("sink", 50)) {
				t.Fatalf("the sink wrote %v, want keys sink0..sink49 once each", sortedKeys(got))
			}
			if v := string(got[0].Value); !strings.HasPrefix(v, `{"k":"sink`) {
				t.Fatalf("record value %q is not the row as JSON", v)
			}

			in := k.NewTopic(t, 2)
			cl, err := kgo.NewClient(append(k.Opts(t, l), kgo.DefaultProduceTopic(in))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			for i := range 200 {
				recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
			}
			if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			src, err := connectors.OpenSource(uri(k.Brokers, in, k.Params(l)+"&group="+in+"-g"), nil)
			if err != nil {
				t.Fatal(err)
			}
			lis := connectortest.Start(t, src)
			lis.WaitPartitions(t, 2, 30*time.Second)
			var seen []string
			for _, p := range lis.Partitions() {
				for _, r := range connectortest.ReadAll(t, p, 0, 20*time.Second).Records() {
					seen = append(seen, string(r.Value))
				}
			}
			want := make([]string, 200)
			for i := range want {
				want[i] = fmt.Sprintf("v%d", i)
			}
			slices.Sort(seen)
			slices.Sort(want)
			if !slices.Equal(seen, want) {
				t.Fatalf("the source read %d records (%v…), want v0..v199 once each", len(seen), seen[:min(len(seen), 5)])
			}
		})
	}
}

// Exactly-once output over TLS and SASL: transactions, the group offsets
// they carry, fencing by a second sink, and the committed checkpoint read
// back.
func TestSecureExactlyOnceSink(t *testing.T) {
	k := testenv.KafkaSecure(t)
	for _, l := range k.Logins() {
		t.Run(l.Mechanism, func(t *testing.T) {
			topic := k.NewTopic(t, 1)
			group := topic + "-g"
			adm := secureAdmin(t, k)
			deleteTopicsAtEnd(t, adm, "__eddy_checkpoints."+topic)
			u := uri(k.Brokers, topic, k.Params(l)+"&exactly-once=true&transactional-id="+topic+"&source-group="+group)
			open := func() connectors.Transactional {
				s, err := connectors.OpenSink(u)
				if err != nil {
					t.Fatal(err)
				}
				return s.(connectors.Transactional)
			}
			ctx := t.Context()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			s := open()
			must(s.Write(ctx, keyedRows("one", 3)))
			must(s.Flush(ctx))
			must(s.Commit(ctx, connectors.Checkpoint{ID: 7, Positions: map[string]connectors.Position{"kafka:" + topic + "/0": []byte(`{"offset":42}`)}}))
			must(s.Write(ctx, keyedRows("aborted", 3)))
			must(s.Abort(ctx))
			must(s.Write(ctx, keyedRows("open", 3)))
			must(s.Flush(ctx))
			s2 := open() // fences s and aborts what it left open
			defer s2.Close()
			if err := s.Commit(ctx, connectors.Checkpoint{ID: 8}); err == nil {
				t.Fatal("the fenced sink committed")
			}
			s.Close()
			cp, err := s2.Committed(ctx)
			must(err)
			if cp.ID != 7 {
				t.Fatalf("committed checkpoint %d, want 7", cp.ID)
			}
			offs, err := adm.FetchOffsets(ctx, group)
			must(err)
			if o, ok := offs.Lookup(topic, 0); !ok || o.At != 42 {
				t.Fatalf("group %s has offset %+v, want 42 from the committed transaction", group, o)
			}
			if got := sortedKeys(secureRecords(t, k, topic, 3)); !slices.Equal(got, wantKeys("one", 3)) {
				t.Fatalf("read_committed sees %v, want only the committed rows one0..one2", got)
			}
		})
	}
}

// The changelog (state moving between nodes) over TLS and SASL: written in
// a transaction, restored from the start and from a commit's offset.
func TestSecureChangelog(t *testing.T) {
	k := testenv.KafkaSecure(t)
	for _, l := range k.Logins() {
		t.Run(l.Mechanism, func(t *testing.T) {
			topic := k.NewTopic(t, 1)
			group := topic + "-g"
			conn, err := kafka.ParseConn(connectors.Target{Host: strings.Join(k.Brokers, ","), Path: topic, Params: paramsOf(t, k.Params(l))})
			if err != nil {
				t.Fatal(err)
			}
			src, err := kafka.NewSource(kafka.SourceConfig{Conn: conn, Group: group})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			deleteTopicsAtEnd(t, secureAdmin(t, k), kafka.ChangelogTopic(group, topic))
			cl, err := src.Changelog("test")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			p := "kafka:" + topic + "/0"
			cl.Write(p, []byte("a"), []byte("1"))
			cl.Write(p, []byte("b"), []byte("2"))
			off1, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 10)})
			if err != nil {
				t.Fatal(err)
			}
			cl.Write(p, []byte("a"), []byte("3"))
			cl.Write(p, []byte("b"), nil)
			if _, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(2, 20)}); err != nil {
				t.Fatal(err)
			}
			got, m, _, _ := restore(t, cl, p, 0)
			sameChanges(t, "restore from 0", got, change{key: "a", value: "1"}, change{key: "b", value: "2"}, change{key: "a", value: "3"}, change{key: "b", del: true})
			sameMarker(t, m, marker(2, 20))
			got, m, _, _ = restore(t, cl, p, off1[p])
			sameChanges(t, "restore from commit 1", got, change{key: "a", value: "3"}, change{key: "b", del: true})
			sameMarker(t, m, marker(2, 20))
		})
	}
}

func paramsOf(t *testing.T, query string) connectors.Params {
	t.Helper()
	tg, err := connectors.Parse("kafka://x/y?" + query)
	if err != nil {
		t.Fatal(err)
	}
	return tg.Params
}

// A wrong password, a CA that did not sign the broker's certificate, and a
// client without TLS or without SASL each fail at once, with the cause in
// the message: franz-go would retry some of them for ever.
func TestSecureRefusals(t *testing.T) {
	k := testenv.KafkaSecure(t)
	topic := k.NewTopic(t, 1)
	wrong := func(l testenv.Login) testenv.Login { l.Password += "-wrong"; return l }
	otherCA := k
	otherCA.CA = testenv.UnknownCA(t)
	tests := []struct {
		name, params, errContains string
	}{
		{"wrong scram password", k.Params(wrong(k.Scram)), "SASL Authentication failed.: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (check user=" + k.Scram.User + " and the password for sasl=scram-sha-512)"},
		{"wrong plain password", k.Params(wrong(k.Plain)), "SASL Authentication failed.: Authentication failed: Invalid username or password (check user=" + k.Plain.User + " and the password for sasl=plain)"},
		{"unknown user", k.Params(testenv.Login{Mechanism: "scram-sha-512", User: "eddy-nobody", Password: "x"}), "SASL Authentication failed.: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (check user=eddy-nobody and the password for sasl=scram-sha-512)"},
		{"unknown CA", otherCA.Params(k.Scram), "x509: certificate signed by unknown authority (the CA in tls-ca= did not sign the broker's certificate)"},
		{"system roots", "tls=true&sasl=plain&user=" + k.Plain.User + "&password=" + k.Plain.Password, "certificate signed by unknown authority (give the CA"},
		{"plaintext client", "sasl=plain&user=" + k.Plain.User + "&password=" + k.Plain.Password, "is this a plaintext connection speaking to a tls endpoint? (the listener takes TLS: add tls=true, or tls-ca=FILE for a private CA)"},
		{"tls without sasl", "tls-ca=" + k.CA, "is SASL missing? (the listener wants a SASL login: add sasl=, user= and password=)"},
		{"mechanism not offered", k.Params(testenv.Login{Mechanism: "scram-sha-256", User: k.Scram.User, Password: k.Scram.Password}),
			"UNSUPPORTED_SASL_MECHANISM: The broker does not support the requested SASL mechanism. (the listener does not offer sasl=scram-sha-256)"},
	}
	openers := []struct {
		name string
		open func(ctx context.Context, u string) error
	}{
		{"source", func(ctx context.Context, u string) error {
			src, err := connectors.OpenSource(u, nil)
			if err != nil {
				return err
			}
			defer src.Close()
			return src.Start(ctx, connectortest.NewListener())
		}},
		{"sink", func(_ context.Context, u string) error {
			s, err := connectors.OpenSink(u)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"exactly-once sink", func(_ context.Context, u string) error {
			s, err := connectors.OpenSink(u + "&exactly-once=true&transactional-id=" + topic)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"changelog", func(_ context.Context, u string) error {
			src, err := connectors.OpenSource(u, nil)
			if err != nil {
				return err
			}
			defer src.Close()
			cl, err := src.(connectors.ChangelogSource).Changelog("refused")
			if err == nil {
				cl.Close()
			}
			return err
		}},
	}
	for _, tc := range tests {
		for _, o := range openers {
			t.Run(tc.name+"/"+o.name, func(t *testing.T) {
				// Well under the 15s a check may wait for an unreachable
				// broker: a refusal is an answer, not a timeout.
				const limit = 10 * time.Second
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				start := time.Now()
				err := o.open(ctx, uri(k.Brokers, topic, tc.params))
				if took := time.Since(start); took > limit {
					t.Errorf("failed after %v, want within %v", took.Round(time.Millisecond), limit)
				}
				if err == nil || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("error %v, want one containing %q", err, tc.errContains)
				}
			})
		}
	}
}

// A certificate for another name: the local listener's certificate names
// 127.0.0.1 and localhost, so this one is built by hand.
func TestExplainCertificateForAnotherName(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"kafka1.example"}}
	err := kafka.Conn{Brokers: []string{"10.0.0.5:9094"}}.Explain(fmt.Errorf("unable to dial: %w", x509.HostnameError{Certificate: cert, Host: "10.0.0.5"}))
	want := "kafka 10.0.0.5:9094: unable to dial: x509: cannot validate certificate for 10.0.0.5 because it doesn't contain any IP SANs (the broker's certificate is not for the address in the URI: use a name or address it lists)"
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
}
