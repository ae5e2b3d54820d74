package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KafkaServer is a Kafka broker of one test's own, started by the recipe
// the shared one comes from (services/kafka.sh, its cached jars) on other
// ports and with its data in the test's temporary directory, so the test
// can stop and start it without disturbing other tests.
type KafkaServer struct {
	Brokers []string
	env     []string
	script  string
	dir     string
}

// PrivateKafka starts a KafkaServer and stops it when the test ends. It
// skips the test, saying how to install them, when the jars or Java are
// missing.
func PrivateKafka(t testing.TB) *KafkaServer {
	t.Helper()
	if localCache == "" {
		t.Skip("testenv: cannot locate this checkout's .cache for the Kafka jars")
	}
	jars := filepath.Join(localCache, "kafka", "libs")
	if _, err := os.Stat(filepath.Join(jars, ".pom.sha256")); err != nil {
		t.Skipf("no Kafka jars in %s: run `bash services/kafka.sh fetch` (needs Maven and Java 17) to run this test with a broker of its own", jars)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("no java on PATH: install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless) to run this test with a broker of its own")
	}
	port, err := freePortBlock(8)
	if err != nil {
		t.Fatalf("testenv: private kafka: %v", err)
	}
	k := &KafkaServer{
		Brokers: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))},
		script:  filepath.Join(localCache, "..", "services", "kafka.sh"),
		dir:     t.TempDir(),
	}
	// Every setting of its own, over any the environment has for the
	// shared broker (exec keeps the last of a repeated name).
	k.env = append(os.Environ(), "EDDY_KAFKA_DIR="+k.dir, "EDDY_KAFKA_PORT="+strconv.Itoa(port),
		"EDDY_KAFKA_CONTROLLER_PORT="+strconv.Itoa(port+1), "EDDY_KAFKA_SECURE_PORT="+strconv.Itoa(port+2))
	t.Cleanup(func() { k.stop(t) })
	k.Start(t)
	return k
}

// Start starts the broker (again), waiting until it answers a produce and
// a consume.
func (k *KafkaServer) Start(t testing.TB) {
	t.Helper()
	if err := k.run("up"); err != nil {
		t.Fatalf("testenv: private kafka up on %s: %v", k.Brokers[0], err)
	}
}

// Stop stops the broker (SIGTERM, a controlled shutdown).
func (k *KafkaServer) Stop(t testing.TB) {
	t.Helper()
	if err := k.run("down"); err != nil {
		t.Fatalf("testenv: private kafka down on %s: %v", k.Brokers[0], err)
	}
}

// stop ends the broker when the test ends: down, else SIGKILL to the pid
// it recorded.
func (k *KafkaServer) stop(t testing.TB) {
	err := k.run("down")
	if err == nil {
		return
	}
	t.Errorf("testenv: private kafka down: %v; killing it", err)
	b, err := os.ReadFile(filepath.Join(k.dir, "kafka.pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (k *KafkaServer) run(step string) error {
	start := time.Now()
	cmd := exec.Command("bash", k.script, step)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w after %v\n%s", err, time.Since(start).Round(time.Millisecond), out)
	}
	return nil
}

// freePortBlock finds n consecutive free ports on 127.0.0.1 below the
// ephemeral range (see listenBelowEphemeral) and returns the first.
func freePortBlock(n int) (int, error) {
	low := ephemeralLow()
	const first = 10000
	for range 50 {
		base := first + rand.IntN(low-first-n)
		if portsFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d free consecutive ports below %d after 50 tries", n, low)
}

func portsFree(base, n int) bool {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		lns = append(lns, ln)
	}
	return true
}
