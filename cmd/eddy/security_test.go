package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/statusapi"
)

// writeToken writes a token file and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their paths.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "eddy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Each bad security flag or file stops the run before it starts, naming
// the flag and the file; each confinement violation stops it naming the
// path, variable or host.
func TestRunRefusesInsecureSettings(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	token := writeToken(t, "0123456789abcdefXYZ")
	cert, key := writeCert(t)
	otherCert, _ := writeCert(t)
	notPEM := writeToken(t, "this-is-not-a-certificate")
	allowed := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(allowed, "out")); err != nil {
		t.Fatal(err)
	}
	gen := "gen:netflow?count=10"
	for _, tc := range []struct {
		name        string
		args        []string
		errContains string
	}{
		{"missing token file", []string{"--http-token-file", "/nonexistent/token"}, "--http-token-file: open /nonexistent/token: no such file"},
		{"empty token file", []string{"--http-token-file", writeToken(t, "")}, "holds a token of 0 characters: want at least 16"},
		{"short token", []string{"--http-token-file", writeToken(t, "short")}, "holds a token of 5 characters"},
		{"token with a space", []string{"--http-token-file", writeToken(t, "two words 0123456789")}, "the token holds ' ', which an HTTP header cannot carry"},
		{"metrics public without a token", []string{"--http-metrics-public"}, "--http-metrics-public exempts /metrics from --http-token-file, which is not given"},
		{"key without a certificate", []string{"--http-tls-key", key}, "--http-tls-key " + key + " needs --http-tls-cert"},
		{"certificate without a key", []string{"--http-tls-cert", cert}, "--http-tls-cert " + cert + " needs --http-tls-key"},
		{"unreadable certificate", []string{"--http-tls-cert", "/nonexistent/cert.pem", "--http-tls-key", key}, "--http-tls-cert: open /nonexistent/cert.pem: no such file"},
		{"certificate not PEM", []string{"--http-tls-cert", notPEM, "--http-tls-key", key}, "--http-tls-cert " + notPEM + " holds no PEM certificate"},
		{"unreadable key", []string{"--http-tls-cert", cert, "--http-tls-key", "/nonexistent/key.pem"}, "--http-tls-key: open /nonexistent/key.pem"},
		{"key of another certificate", []string{"--http-tls-cert", otherCert, "--http-tls-key", key}, "--http-tls-key " + key + " (the key of --http-tls-cert " + otherCert + ")"},
		{"CA without TLS", []string{"--http-tls-ca", cert, "--http-token-file", token}, "--http-tls-ca " + cert + ": it verifies the server's certificate, and there is no --http-tls-cert"},
		{"missing allowed path", []string{"--allow-path", "/nonexistent/dir"}, "--allow-path: allowed path /nonexistent/dir"},
		{"source outside", []string{"--allow-path", allowed, "--source", "file:/etc/hostname"}, `source "file:/etc/hostname": path /etc/hostname is not allowed (--allow-path: `},
		{"sink outside", []string{"--allow-path", allowed, "--sink", "file:" + outside + "/r.jsonl"}, "path " + outside + "/r.jsonl is not allowed"},
		{"dead letters outside", []string{"--allow-path", allowed, "--dead-letter", "file:" + allowed + "/../" + filepath.Base(outside) + "/dead.jsonl"}, "/dead.jsonl is not allowed"},
		{"symlink escape", []string{"--allow-path", allowed, "--sink", "file:" + allowed + "/out/r.jsonl"}, "path " + allowed + "/out/r.jsonl (" + outside + "/r.jsonl) is not allowed"},
		{"a generator with paths confined", []string{"--allow-path", allowed, "--source", gen, "--sink", "file:" + allowed + "/r.jsonl"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", netflowScript, "--until-idle", "-q", "--http", "127.0.0.1:0"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--source") {
				args = append(args, "--source", gen)
			}
			err := runInProcess(t, args...)
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("eddy %s: %v", strings.Join(args, " "), err)
			case tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)):
				t.Fatalf("got %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(outside, "r.jsonl")); err == nil {
		t.Fatal("a refused sink wrote outside the allowed directory")
	}
	for _, tc := range []struct {
		name, script string
		args         []string
		errContains  string
	}{
		{"key-env", "../../scripts/weather.lua", []string{"--allow-host", "api.openweathermap.org"}, "environment variable OWM_API_KEY is not allowed (--allow-env: none)"},
		{"host", "../../scripts/weather.lua", []string{"--allow-host", "127.0.0.1", "--allow-env", "OWM_API_KEY"}, "host api.openweathermap.org is not allowed (--allow-host: 127.0.0.1)"},
		{"lookup host, at load", "../../scripts/server_logs.lua", []string{"--allow-host", "10.1.2.3"}, "lookups.users: lookup \"mysql://eddy@127.0.0.1:3306/dim_users/users\": host 127.0.0.1:3306 is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runInProcess(t, append([]string{"run", tc.script, "--until-idle", "-q"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
}

// A confined run reads and writes inside its allowed directory as it
// would unconfined.
func TestConfinedRun(t *testing.T) {
	allowed := t.TempDir()
	dir := genFlows(t, 2000, 2, 0)
	data := filepath.Join(allowed, "flows")
	if err := os.Rename(dir, data); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(allowed, "top.jsonl")
	_, stderr, err := eddy(t, "run", netflowScript, "--source", "dir:"+data, "--sink", "file:"+out, "--emit", "final", "--until-idle",
		"--dead-letter", "file:"+filepath.Join(allowed, "dead.jsonl"), "--allow-path", allowed, "--allow-host", "nowhere.invalid")
	if err != nil {
		t.Fatalf("a confined run inside its directory: %v\n%s", err, stderr)
	}
	got, _ := os.ReadFile(out)
	if want := expectedTop20(t, data); string(got) != want {
		t.Fatalf("confined run's top 20:\n%s\nwant:\n%s", got, want)
	}
}

// scrape asks addr for path with the given Authorization header, without
// following redirects; the code is 0 when nothing answers.
func scrape(t *testing.T, addr, path, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error() // not serving yet
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With --http-token-file, every endpoint (metrics included) answers 401
// without the token and serves with it; eddy status and eddy query send it
// from --http-token-file, or from the runtime directory's entry.
func TestHTTPToken(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	const secret = "tok-0123456789abcdef"
	token := writeToken(t, secret)
	addr := freeAddr(t)
	stderr := startLogged(t, netflowScript, "--source", "gen:netflow?count=0&rate=20000", "--emit", "update", "--http", addr, "--http-token-file", token)
	bearer := "Bearer " + secret
	waitFor(t, "the result table", stderr, func() bool { code, body := scrape(t, addr, "/state", bearer); return code == 200 && body != "" })
	for _, path := range []string{"/status", "/state", "/state/EnterpriseAppServer", "/metrics", "/pipeline", "/checkpoints"} {
		if code, body := scrape(t, addr, path, ""); code != 401 || !strings.Contains(body, "this node needs its token") {
			t.Fatalf("GET %s without the token: %d %q, want 401", path, code, body)
		}
		if code, body := scrape(t, addr, path, "Bearer not-the-token-0123"); code != 401 || !strings.Contains(body, "the bearer token is not this node's") {
			t.Fatalf("GET %s with a wrong token: %d %q, want 401", path, code, body)
		}
	}
	for _, path := range []string{"/status", "/state", "/metrics", "/pipeline"} {
		if code, body := scrape(t, addr, path, bearer); code != 200 {
			t.Fatalf("GET %s with the token: %d %q", path, code, body)
		}
	}
	if code, _ := scrape(t, addr, "/", ""); code != 303 {
		t.Fatalf("GET / without the token: %d, want 303 to the login form", code)
	}

	if _, errOut, err := eddy(t, "status", "--http", addr); err == nil || !strings.Contains(errOut, "401") && !strings.Contains(errOut, "this node needs its token") {
		t.Fatalf("eddy status without the token: %v %s", err, errOut)
	}
	if _, errOut, err := eddy(t, "query", "--http", addr, "--http-token-file", writeToken(t, "another-0123456789ab")); err == nil || !strings.Contains(errOut, "the bearer token is not this node's") {
		t.Fatalf("eddy query with another token: %v %s", err, errOut)
	}
	for _, args := range [][]string{{"status", "--http", addr, "--http-token-file", token}, {"status"}, {"query", "netflow_webservers"}} {
		if out, errOut, err := eddy(t, args...); err != nil || out == "" {
			t.Fatalf("eddy %s: %v %s", strings.Join(args, " "), err, errOut)
		}
	}
}

// --http-metrics-public serves /metrics without the token, and nothing
// else.
func TestHTTPMetricsPublic(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	addr := freeAddr(t)
	stderr := startLogged(t, netflowScript, "--source", "gen:netflow?count=0&rate=1000", "--http", addr,
		"--http-token-file", writeToken(t, "tok-0123456789abcdef"), "--http-metrics-public")
	waitFor(t, "the metrics", stderr, func() bool { code, _ := scrape(t, addr, "/metrics", ""); return code == 200 })
	if code, _ := scrape(t, addr, "/status", ""); code != 401 {
		t.Fatalf("GET /status without the token, metrics public: %d, want 401", code)
	}
}

// A bare --http :PORT serves this machine only; 0.0.0.0:PORT every
// interface, with a warning when it asks for no token.
func TestHTTPLoopbackByDefault(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	external := nonLoopbackIP()
	for _, tc := range []struct {
		host     string
		external bool
	}{{"", false}, {"0.0.0.0", true}} {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		stderr := startLogged(t, netflowScript, "--source", "gen:netflow?count=0&rate=1000", "--http", tc.host+":"+port)
		waitFor(t, "the server", stderr, func() bool { code, _ := scrape(t, "127.0.0.1:"+port, "/status", ""); return code == 200 })
		warned := strings.Contains(stderr.String(), "give --http-token-file")
		if warned != tc.external {
			t.Fatalf("--http %s:%s: warned of no token %v, want %v\n%s", tc.host, port, warned, tc.external, stderr)
		}
		if external == "" {
			t.Logf("no address but loopback on this machine: --http %s:%s not dialled from outside", tc.host, port)
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(external, port), 10*time.Second)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.external {
			t.Fatalf("--http %s:%s dialled at %s: %v, want reachable %v", tc.host, port, external, err, tc.external)
		}
	}
}

// nonLoopbackIP is an IPv4 address of this machine other than loopback,
// "" when it has none.
func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// Two nodes serving HTTPS with one token: the cluster's own calls (over
// its remote) carry the token and TLS too, so eddy query, with the token
// and CA from flags or from the runtime directory, merges both nodes'
// counts; without the CA, over plain HTTP or without the token it is
// refused, saying what to give.
func TestClusterWithTokenAndTLS(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	dir := genFlows(t, 20000, 2, 0)
	counts, err := reference.NetflowCountsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	token := writeToken(t, "cluster-0123456789abcdef")
	cert, key := writeCert(t)
	peers := "--peers=" + freeAddr(t) + "," + freeAddr(t) // apart from other tests' clusters
	var addrs []string
	var logs []fmt.Stringer
	for range 2 {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		addr := freeAddr(t)
		stderr := startLogged(t, netflowScript, "--source", "dir:"+dir, "--emit", "update", "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"),
			"--cluster-port", port, peers, "--http", addr, "--http-token-file", token, "--http-tls-cert", cert, "--http-tls-key", key)
		addrs, logs = append(addrs, addr), append(logs, stderr)
	}
	doubled := map[string]int64{}
	for k, n := range counts {
		doubled[k] = 2 * n
	}
	want := reference.Top(doubled, 20)
	var top, last string
	for deadline := time.Now().Add(time.Minute); top != want; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's top 20 within a minute: %s\n%s\nwant:\n%s\n%s\n%s", last, top, want, logs[0], logs[1])
		}
		var errOut string
		top, errOut, err = eddy(t, "query", "netflow_webservers", "--http", addrs[0], "--http-token-file", token, "--http-tls-ca", cert)
		last = fmt.Sprint(err, errOut)
	}
	if got, errOut, err := eddy(t, "query", "netflow_webservers"); err != nil || got != want {
		t.Fatalf("eddy query found on this machine: %v %s\n%s", err, errOut, got)
	}
	for _, tc := range []struct {
		name        string
		args        []string
		errContains string
	}{
		{"without the CA", []string{"--http", "https://" + addrs[1], "--http-token-file", token}, "give --http-tls-ca FILE"},
		{"over HTTP", []string{"--http", addrs[1], "--http-token-file", token}, "the node serves HTTPS"},
		{"without the token", []string{"--http", addrs[1], "--http-tls-ca", cert}, "this node needs its token"},
	} {
		if _, errOut, err := eddy(t, append([]string{"query"}, tc.args...)...); err == nil || !strings.Contains(errOut, tc.errContains) {
			t.Fatalf("eddy query %s: %v %s, want an error containing %q", tc.name, err, errOut, tc.errContains)
		}
	}
}

// A node with another token is no member for the others: its health port
// refuses their polls and theirs refuse its (each logs it), so neither
// lists the other, and no query fans out to it. (Its remote refuses their
// calls too: internal/nodeauth's TestRemoteOptions.)
func TestClusterRefusesAnotherToken(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	dir := genFlows(t, 2000, 1, 0)
	var addrs []string
	var logs []fmt.Stringer
	secrets := []string{"first-0123456789abcdef", "second-0123456789abcdef"}
	tokens := []string{writeToken(t, secrets[0]), writeToken(t, secrets[1])}
	peers := "--peers=" + freeAddr(t) + "," + freeAddr(t)
	for i := range 2 {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		addr := freeAddr(t)
		stderr := startLogged(t, netflowScript, "--source", "dir:"+dir, "--emit", "update", "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"),
			"--cluster-port", port, peers, "--http", addr, "--http-token-file", tokens[i])
		addrs, logs = append(addrs, addr), append(logs, stderr)
	}
	for i := range 2 {
		waitFor(t, "the refusal in the log", logs[i], func() bool {
			return strings.Contains(logs[i].String(), "refused a health poll without this node's token")
		})
	}
	// Each has been polled by the other, and refused it: each lists
	// itself alone.
	for i := range 2 {
		var st struct {
			Nodes []json.RawMessage `json:"nodes"`
		}
		body, err := statusapi.Client{Token: secrets[i]}.Fetch(t.Context(), addrs[i], "/status")
		if err == nil {
			err = json.Unmarshal(body, &st)
		}
		if err != nil || len(st.Nodes) != 1 {
			t.Fatalf("node %d lists %d nodes (%v), want itself alone:\n%s\n%s", i, len(st.Nodes), err, body, logs[i])
		}
	}
}

// startLogged is startRun with a log the test may read while the run
// writes it.
func startLogged(t *testing.T, args ...string) *lockedbuf.Buffer {
	t.Helper()
	run := exec.Command(eddyBin, append([]string{"run"}, args...)...)
	log := &lockedbuf.Buffer{}
	run.Stderr = log
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		run.Process.Signal(syscall.SIGINT)
		run.Wait()
	})
	return log
}

// waitFor polls cond for a minute, failing with the run's log.
func waitFor(t *testing.T, what string, log fmt.Stringer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s within a minute\n%s", what, log)
		}
	}
}

// The web page behind a token, in a real headless Chromium: opening /
// leads to the login form, a wrong token is refused there, the right one
// opens the page, which then shows the live pipeline; logged out, the page
// goes back to the form.
func TestWebPageWithToken(t *testing.T) {
	browser := needChromium(t)
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	const secret = "page-0123456789abcdef"
	addr := freeAddr(t)
	log := startLogged(t, netflowScript, "--source", "gen:netflow?count=100000000&rate=5000", "--http", addr,
		"--http-token-file", writeToken(t, secret))
	waitFor(t, "the server", log, func() bool { code, _ := scrape(t, addr, "/status", "Bearer "+secret); return code == 200 })
	ctx := newBrowser(t, browser)
	p := &page{t: t, ctx: ctx, stderr: log}
	login := func(token string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/"), chromedp.WaitVisible(`input[name="token"]`),
			chromedp.SendKeys(`input[name="token"]`, token), chromedp.Submit(`input[name="token"]`)); err != nil {
			t.Fatalf("log in: %v\n%s", err, log)
		}
	}
	// Until the form's answer has loaded, evaluating fails (the document
	// goes away): poll through that.
	loaded := func(cond, what string) {
		t.Helper()
		waitFor(t, what, log, func() bool { ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); return err == nil && ok })
	}
	login("not-the-token-0123456789")
	loaded(`location.pathname === "/login" && document.body.textContent.includes("That is not this node's token.")`, "the login form to refuse a wrong token")
	login(secret)
	loaded(`location.pathname === "/"`, "the page after the login")
	p.waitFor(`location.pathname === "/" && document.getElementById("pipeline-name").textContent === "netflow_webservers" &&
		document.querySelector("#partitions tbody").textContent.includes("gen:netflow")`, "the page, logged in, to show the pipeline and its partition")
	var first int64
	waitFor(t, "the records count", log, func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int64](recordsRead))
		first = n
		return err == nil
	})
	p.waitFor(recordsRead+" > "+strconv.FormatInt(first, 10), "the records count to move")
	if cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || cookie != "" {
		t.Fatalf("the page's script reads the session cookie %q (%v): want it HttpOnly", cookie, err)
	}
	// Once the session ends, the page's next poll is refused and takes it
	// back to the login form.
	// The page's own poll, refused once the logout is through, may take it
	// to the login form before the fetch's answer reaches the test (the
	// evaluation's context is gone then): what counts is where the page
	// goes next.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`fetch("/logout", {method: "POST"}).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Logf("log out: %v (the page went on before the answer)", err)
	}
	loaded(`location.pathname === "/login"`, "the page to go back to the login form once logged out")
}
