package statusapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Protect lets through a request with the token (in the header, or the
// cookie the login form sets) and refuses every other with 401 and what to
// send; the public paths and the page's assets need no token.
func TestProtect(t *testing.T) {
	const token = "s3cret-token-0123456789"
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served "+r.URL.Path) })
	srv := httptest.NewServer(Protect(inner, Auth{Token: token, Public: []string{"/metrics"}}))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(t *testing.T, method, path, auth string, cookie *http.Cookie, form url.Values) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	read := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for _, tc := range []struct {
		name, path, auth string
		code             int
		bodyContains     string
	}{
		{"no token", "/state", "", 401, "GET /state: no token: this node needs its token: send the header Authorization: Bearer TOKEN"},
		{"wrong token", "/status", "Bearer wrong-token-0123456789", 401, "the bearer token is not this node's"},
		{"not a bearer", "/status", "Basic dXNlcjpwYXNz", 401, "the Authorization header is not a bearer token"},
		{"a public path needs no token", "/metrics", "", 200, "served /metrics"},
		{"right token", "/state/k", "Bearer " + token, 200, "served /state/k"},
		{"the page without a token goes to the login", "/", "", 303, ""},
		{"the page with a wrong token is refused", "/", "Bearer nope-nope-nope-nope", 401, "not this node's"},
		{"assets need no token", "/web/page.css", "", 200, "served /web/page.css"},
		{"login form", "/login", "", 200, "<form method=\"post\" action=\"/login\">"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, "GET", tc.path, tc.auth, nil, nil)
			body := read(resp)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.bodyContains) {
				t.Fatalf("GET %s: %d %q, want %d and %q", tc.path, resp.StatusCode, body, tc.code, tc.bodyContains)
			}
			if tc.code == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="eddy"` {
				t.Fatalf("401 without WWW-Authenticate: %v", resp.Header)
			}
			if tc.code == 303 && resp.Header.Get("Location") != "/login" {
				t.Fatalf("303 to %q, want /login", resp.Header.Get("Location"))
			}
		})
	}

	t.Run("login", func(t *testing.T) {
		resp := do(t, "POST", "/login", "", nil, url.Values{"token": {"wrong-token-0123456789"}})
		if body := read(resp); resp.StatusCode != 401 || !strings.Contains(body, "not this node&#39;s token") || len(resp.Cookies()) != 0 {
			t.Fatalf("login with a wrong token: %d %v %q", resp.StatusCode, resp.Cookies(), body)
		}
		resp = do(t, "POST", "/login", "", nil, url.Values{"token": {token}})
		read(resp)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
			t.Fatalf("login: %d %v %v", resp.StatusCode, resp.Header, resp.Cookies())
		}
		c := resp.Cookies()[0]
		if c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, token) {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, without the token", c)
		}
		for _, path := range []string{"/", "/state"} {
			if resp := do(t, "GET", path, "", c, nil); resp.StatusCode != 200 || read(resp) != "served "+path {
				t.Fatalf("GET %s with the session cookie: %d", path, resp.StatusCode)
			}
		}
		resp = do(t, "POST", "/logout", "", c, url.Values{})
		read(resp)
		if out := resp.Cookies(); resp.StatusCode != 303 || len(out) != 1 || out[0].Name != SessionCookie || out[0].MaxAge >= 0 {
			t.Fatalf("logout: %d %v, want 303 and the session cookie cleared", resp.StatusCode, out)
		}
		forged := &http.Cookie{Name: SessionCookie, Value: sessionValue("another-token-0123456789")}
		if resp := do(t, "GET", "/state", "", forged, nil); resp.StatusCode != 401 || !strings.Contains(read(resp), "log in again") {
			t.Fatalf("GET /state with another token's cookie: %d", resp.StatusCode)
		}
	})
}
