package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// These tests run eddy against the broker's SASL_SSL listener
// (services/kafka.sh), with a SCRAM-SHA-512 and a PLAIN login, and check
// what it wrote with franz-go clients that testenv configures on its own.

// eddyWithin runs the binary with stdin and gives up after limit: a command
// that would retry a refused login for ever fails the test instead of
// hanging it.
func eddyWithin(t *testing.T, limit time.Duration, stdin string, args ...string) (stdout, stderr string, took time.Duration, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	took = time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("eddy %s: still running after %v (hung?)\n%s", strings.Join(args, " "), limit, tailOf(&errb))
	}
	return out.String(), errb.String(), took, err
}

func secureURI(k testenv.SecureKafka, topic, params string) string {
	return "kafka://" + strings.Join(k.Brokers, ",") + "/" + topic + "?" + params
}

// secureClient is a franz-go client of the listener (SCRAM), closed with
// the test.
func secureClient(t *testing.T, k testenv.SecureKafka, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(k.Opts(t, k.Scram), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topicValues reads every record of topic that is there now.
func topicValues(t *testing.T, k testenv.SecureKafka, topic string) [][]byte {
	t.Helper()
	adm := kadm.NewClient(secureClient(t, k))
	ends, err := adm.ListEndOffsets(t.Context(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl := secureClient(t, k, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var vals [][]byte
	for int64(len(vals)) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { vals = append(vals, r.Value) })
	}
	if int64(len(vals)) != want {
		t.Fatalf("read %d records of %s, its partitions end at %d in all", len(vals), topic, want)
	}
	return vals
}

// deleteTopicsNamed deletes, at the end of the test, every topic whose
// name contains one of names (eddy's changelog and checkpoint topics too).
func deleteTopicsNamed(t *testing.T, k testenv.SecureKafka, names ...string) {
	adm := kadm.NewClient(secureClient(t, k))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tds, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("list topics: %v", err)
			return
		}
		var del []string
		for _, td := range tds.Sorted() {
			for _, n := range names {
				if strings.Contains(td.Topic, n) {
					del = append(del, td.Topic)
					break
				}
			}
		}
		if len(del) > 0 {
			if _, err := adm.DeleteTopics(ctx, del...); err != nil {
				t.Logf("delete %v: %v", del, err)
			}
		}
	})
}

// Every command that talks to Kafka, over TLS with each login: topics are
// created, listed, described and deleted; produce writes the generated
// flows; an exactly-once run with its changelog counts them; consume
// prints exactly the independent computation's top 20.
func TestSecureCommands(t *testing.T) {
	k := testenv.KafkaSecure(t)
	dir := genFlows(t, 20_000, 2, 0)
	counts, err := reference.NetflowCountsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range k.Logins() {
		t.Run(l.Mechanism, func(t *testing.T) {
			p := k.Params(l)
			run := func(stdin string, args ...string) string {
				t.Helper()
				out, stderr, _, err := eddyWithin(t, runLimit, stdin, args...)
				if err != nil {
					t.Fatalf("eddy %s: %v\n%s", args[0], err, stderr)
				}
				return out
			}
			// Names of this run's own: eddy topics create makes them.
			base := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_") + "_" + rand.Text()[:8]
			in, out := "eddy_test_"+base+"_in", "eddy_test_"+base+"_out"
			group := "eddy_test_" + base + "_g"
			deleteTopicsNamed(t, k, in, out, group)
			run("", "topics", "create", secureURI(k, in, p), "--partitions", "3")
			run("", "topics", "create", secureURI(k, out, p), "--partitions", "1")

			// The broker learns of a new topic a moment after its
			// controller: list until both show, for up to 10s.
			for deadline := time.Now().Add(10 * time.Second); ; {
				list := rowsByFirst(run("", "topics", "list", secureURI(k, "", p)))
				if len(list[in]) == 1 && list[in][0][1] == "3" && len(list[out]) == 1 && list[out][0][1] == "1" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("topics list shows %v and %v, want %s with 3 partitions and %s with 1", list[in], list[out], in, out)
				}
			}
			if desc := rowsByFirst(run("", "topics", "describe", secureURI(k, in, p))); len(desc[in]) != 3 {
				t.Fatalf("topics describe shows %d partitions of %s, want 3: %v", len(desc[in]), in, desc[in])
			}

			run("", "produce", secureURI(k, in, p), "--from", dir)
			if got := reference.NetflowCounts(topicValues(t, k, in)); !sameMap(got, counts) {
				t.Fatalf("the topic produce wrote counts %d devices, the files %d: not the same flows", len(got), len(counts))
			}

			run("", "run", netflowScript, "--source", secureURI(k, in, p+"&group="+group), "--sink", secureURI(k, out, p),
				"--exactly-once", "--until-idle", "-q", "--state", filepath.Join(t.TempDir(), "state"))
			got := run("", "consume", secureURI(k, out, p), "--from-beginning", "--read-committed", "--until-idle")
			if want := reference.Top(counts, 20); got != want {
				t.Fatalf("the run's output, read by eddy consume:\n%s\nwant the independent top 20:\n%s", got, want)
			}
			// The run kept its state in the changelog, through the same listener.
			changelog := kafka.ChangelogTopic(group, in)
			ends, err := kadm.NewClient(secureClient(t, k)).ListEndOffsets(t.Context(), changelog)
			if err == nil {
				err = ends.Error()
			}
			if err != nil || len(ends.Offsets()) == 0 {
				t.Fatalf("the changelog %s: %v", changelog, err)
			}
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset == 0 {
					t.Errorf("the changelog %s is empty in partition %d", changelog, o.Partition)
				}
			})

			run("", "topics", "delete", secureURI(k, in+","+out, p))
			md, err := kadm.NewClient(secureClient(t, k)).Metadata(t.Context(), in, out)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{in, out} {
				if td, ok := md.Topics[name]; ok && td.Err == nil {
					t.Errorf("topics delete left %s", name)
				}
			}
		})
	}
}

// rowsByFirst splits a table into the fields of each line, by first field.
func rowsByFirst(table string) map[string][][]string {
	rows := map[string][][]string{}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = append(rows[f[0]], f)
		}
	}
	return rows
}

func sameMap(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Each command refuses a wrong password, an unknown CA and a missing TLS
// at once, with the cause in one line and no stack trace.
func TestSecureCommandRefusals(t *testing.T) {
	k := testenv.KafkaSecure(t)
	topic := k.NewTopic(t, 1)
	otherCA := k
	otherCA.CA = testenv.UnknownCA(t)
	wrong := func(l testenv.Login) testenv.Login { l.Password += "-wrong"; return l }
	cases := []struct{ name, params, errContains string }{
		{"wrong scram password", k.Params(wrong(k.Scram)), "SASL Authentication failed.: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (check user=" + k.Scram.User},
		{"wrong plain password", k.Params(wrong(k.Plain)), "SASL Authentication failed.: Authentication failed: Invalid username or password (check user=" + k.Plain.User},
		{"unknown CA", otherCA.Params(k.Scram), "tls: failed to verify certificate: x509: certificate signed by unknown authority (the CA in tls-ca= did not sign the broker's certificate)"},
		{"plaintext client", "sasl=plain&user=" + k.Plain.User + "&password=" + k.Plain.Password, "is this a plaintext connection speaking to a tls endpoint? (the listener takes TLS: add tls=true"},
	}
	dir := genFlows(t, 10, 1, 0)
	commands := []struct {
		name  string
		stdin string
		args  func(u string) []string
	}{
		{"topics list", "", func(u string) []string { return []string{"topics", "list", strings.Replace(u, "/"+topic+"?", "?", 1)} }},
		{"topics create", "", func(u string) []string {
			return []string{"topics", "create", strings.Replace(u, topic, topic+"_new", 1)}
		}},
		{"produce", "a line\n", func(u string) []string { return []string{"produce", u} }},
		{"consume", "", func(u string) []string { return []string{"consume", u, "--from-beginning"} }},
		{"run source", "", func(u string) []string {
			return []string{"run", netflowScript, "--source", u, "--until-idle", "-q", "--state", filepath.Join(t.TempDir(), "state")}
		}},
		{"run sink", "", func(u string) []string {
			return []string{"run", netflowScript, "--source", "dir:" + dir, "--sink", u, "--until-idle", "-q", "--state", filepath.Join(t.TempDir(), "state")}
		}},
	}
	for _, tc := range cases {
		for _, c := range commands {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				// Refusals are answers: a process start and a round trip,
				// far below the 15s a check waits for an unreachable broker.
				const limit = 10 * time.Second
				args := c.args(secureURI(k, topic, tc.params))
				_, stderr, took, err := eddyWithin(t, time.Minute, c.stdin, args...)
				if err == nil {
					t.Fatalf("eddy %s succeeded", strings.Join(args, " "))
				}
				if !strings.Contains(stderr, tc.errContains) {
					t.Fatalf("stderr:\n%s\nwant it to contain %q", stderr, tc.errContains)
				}
				if strings.Contains(stderr, "goroutine ") {
					t.Fatalf("a stack trace:\n%s", stderr)
				}
				if took > limit {
					t.Errorf("failed after %v, want within %v", took.Round(time.Millisecond), limit)
				}
			})
		}
	}
}
