package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "plain", in: "TestKafka", max: 40, want: "testkafka"},
		{name: "subtest", in: "TestSink/two partitions", max: 40, want: "testsink_two_partitions"},
		{name: "runs collapse", in: "__A--b__", max: 40, want: "a_b"},
		{name: "cut", in: "TestAVeryLongName", max: 5, want: "testa"},
		{name: "no trailing underscore after cut", in: "ab/cd", max: 3, want: "ab"},
		{name: "no room", in: "Test", max: -3, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitize(tt.in, tt.max); got != tt.want {
				t.Errorf("sanitize(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestUniqueNameFitsAndDiffers(t *testing.T) {
	a, b := uniqueName(t, "t_", 48), uniqueName(t, "t_", 48)
	if a == b {
		t.Fatalf("two names are both %q", a)
	}
	for _, n := range []string{a, b} {
		if len(n) > 48 || !strings.HasPrefix(n, "t_testuniquenamefitsanddiffers_") {
			t.Errorf("name %q: want at most 48 characters, starting with the prefix and the test's name", n)
		}
	}
}

func TestSkipMessageNamesTheRecipe(t *testing.T) {
	useCache(t, t.TempDir()) // no server of the recipes runs
	t.Setenv(KafkaEnv, "")
	t.Setenv(CassandraEnv, " , ")
	t.Setenv(MySQLEnv, "")
	t.Setenv(KafkaSecureEnv, "")
	tests := []struct {
		name string
		call func(testing.TB)
		want string
	}{
		{name: "kafka", call: func(tb testing.TB) { Kafka(tb) }, want: "EDDY_KAFKA_BROKERS is unset: run `just kafka-up && source services/env.sh`"},
		{name: "cassandra", call: func(tb testing.TB) { Cassandra(tb) }, want: "EDDY_CASSANDRA_HOSTS is unset: run `just cassandra-up && source services/env.sh`"},
		{name: "mysql", call: func(tb testing.TB) { MySQL(tb) }, want: "EDDY_MYSQL_DSN is unset: run `just mysql-up && source services/env.sh`"},
		{name: "kafka secure", call: func(tb testing.TB) { KafkaSecure(tb) }, want: "EDDY_KAFKA_SECURE_BROKERS is unset: run `just kafka-up && source services/env.sh`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &skipRecorder{TB: t}
			tt.call(tb)
			if !strings.Contains(tb.msg, tt.want) {
				t.Errorf("skip message %q, want it to contain %q", tb.msg, tt.want)
			}
		})
	}
}

// With the secured listener's address set, a missing login or CA fails
// the test, naming the variable: a skip would hide a broken setup.
func TestKafkaSecureIncompleteFails(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{KafkaSecureEnv: "127.0.0.1:9094", KafkaCAEnv: ca, KafkaScramUserEnv: "u", KafkaScramPasswordEnv: "p",
		KafkaPlainUserEnv: "u", KafkaPlainPasswordEnv: "p"}
	tests := []struct{ name, env, value, want string }{
		{name: "no CA", env: KafkaCAEnv, want: "EDDY_KAFKA_SECURE_BROKERS is set but EDDY_KAFKA_CA is not"},
		{name: "no plain password", env: KafkaPlainPasswordEnv, want: "EDDY_KAFKA_SECURE_BROKERS is set but EDDY_KAFKA_PLAIN_PASSWORD is not"},
		{name: "CA missing", env: KafkaCAEnv, value: ca + ".gone", want: "EDDY_KAFKA_CA: stat " + ca + ".gone: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range all {
				t.Setenv(k, v)
			}
			t.Setenv(tt.env, tt.value)
			tb := &fatalRecorder{TB: t}
			KafkaSecure(tb)
			if !strings.Contains(tb.msg, tt.want) {
				t.Errorf("failure %q, want it to contain %q", tb.msg, tt.want)
			}
		})
	}
}

// fatalRecorder keeps the first message of a Fatalf instead of failing.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	if r.msg == "" {
		r.msg = fmt.Sprintf(format, args...)
	}
}

// skipRecorder keeps the message of a Skipf instead of skipping.
type skipRecorder struct {
	testing.TB
	msg string
}

func (r *skipRecorder) Skipf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

// useCache points localServer at dir for the duration of the test.
func useCache(t *testing.T, dir string) {
	old := localCache
	localCache = dir
	t.Cleanup(func() { localCache = old })
}

func TestFallbackToRecipeServer(t *testing.T) {
	dir := t.TempDir()
	useCache(t, dir)
	t.Setenv(KafkaEnv, "")
	if err := os.MkdirAll(filepath.Join(dir, "kafka"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "kafka", "kafka.pid")
	self, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	exe := strings.SplitN(string(self), "\x00", 2)[0]

	tests := []struct {
		name    string
		pid     string
		marker  string
		wantHit bool
	}{
		{name: "live pid with marker", pid: strconv.Itoa(os.Getpid()), marker: exe, wantHit: true},
		{name: "live pid of another program", pid: strconv.Itoa(os.Getpid()), marker: "kafka.Kafka"},
		{name: "pid of a stopped machine", pid: "999999999", marker: exe},
		{name: "garbage", pid: "x", marker: exe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(pidfile, []byte(tt.pid+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, hit := localServer("kafka/kafka.pid", tt.marker)
			if hit != tt.wantHit {
				t.Errorf("localServer with pid %s, marker %q = %v, want %v", tt.pid, tt.marker, hit, tt.wantHit)
			}
		})
	}
}
