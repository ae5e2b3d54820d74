package statusapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// Auth is what Protect asks of a request: the bearer token of eddy run
// --http-token-file, in an Authorization header (eddy status, eddy query,
// scripts, Prometheus) or, for the web page, in the session cookie POST
// /login sets once the token is typed into its form.
type Auth struct {
	// Token is the secret every request must carry.
	Token string
	// Public are paths served without it (eddy run --http-metrics-public:
	// "/metrics").
	Public []string
	// Secure marks the session cookie for HTTPS only (the server serves
	// TLS).
	Secure bool
}

// SessionCookie is the cookie that carries the web page's login: an HMAC
// of the token, so the token itself is never stored in the browser and a
// new token ends every session.
const SessionCookie = "eddy_session"

// Protect serves h to requests that carry a.Token, and answers the others
// 401 with what to send, except GET / in a browser, which goes to the
// login form at /login. POST /logout ends the browser's session.
func Protect(h http.Handler, a Auth) http.Handler {
	session := sessionValue(a.Token)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { loginForm(w, http.StatusOK, "") })
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) { login(w, r, a, session) })
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.Secure, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch ok, why := authorized(r, a.Token, session); {
		case ok || slices.Contains(a.Public, r.URL.Path) || strings.HasPrefix(r.URL.Path, "/web/"):
			// /web/ holds the page's style and icon, which the login
			// form uses too: no secret.
			h.ServeHTTP(w, r)
		case r.Method == http.MethodGet && r.URL.Path == "/" && r.Header.Get("Authorization") == "":
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="eddy"`)
			http.Error(w, fmt.Sprintf("%s %s: %s: this node needs its token: send the header Authorization: Bearer TOKEN "+
				"(eddy status and eddy query: --http-token-file FILE; the web page: log in at /login)", r.Method, r.URL.Path, why), http.StatusUnauthorized)
		}
	})
	return mux
}

// authorized says whether r carries the token (or the session cookie
// made from it), and why not when it doesn't.
func authorized(r *http.Request, token, session string) (bool, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		got, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return false, "the Authorization header is not a bearer token"
		}
		if !equal(strings.TrimSpace(got), token) {
			return false, "the bearer token is not this node's"
		}
		return true, ""
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if equal(c.Value, session) {
			return true, ""
		}
		return false, "the session cookie is not from this node's token (log in again)"
	}
	return false, "no token"
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("eddy web page session"))
	return hex.EncodeToString(m.Sum(nil))
}

// login checks the token typed into the form; the right one sets the
// session cookie and goes to the page.
func login(w http.ResponseWriter, r *http.Request, a Auth, session string) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		loginForm(w, http.StatusBadRequest, "the form did not parse: "+err.Error())
		return
	}
	if !equal(strings.TrimSpace(r.PostForm.Get("token")), a.Token) {
		loginForm(w, http.StatusUnauthorized, "That is not this node's token.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: session, Path: "/",
		HttpOnly: true, Secure: a.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>eddy: log in</title>
<link rel="stylesheet" href="/web/page.css"></head>
<body><main><h1>eddy</h1>
<p>This node asks for its token (the content of its <code>--http-token-file</code>).</p>
{{if .}}<p role="alert">{{.}}</p>{{end}}
<form method="post" action="/login">
<label>Token <input name="token" type="password" autocomplete="current-password" autofocus required></label>
<button type="submit">Log in</button>
</form></main></body></html>
`))

func loginForm(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	loginPage.Execute(w, msg)
}
