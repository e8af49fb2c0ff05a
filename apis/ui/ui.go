// Package ui is the web dashboard l4m-server serves at /ui/, on the API's
// port: server-rendered pages (html/template) and a little JavaScript, all
// embedded in the binary, nothing fetched from elsewhere. It reads through
// the API server's store and decides with its Authorizer, so the roles mean
// what they mean for l4mctl: every page and every action is checked on the
// server, for the session's user, each time. Actions and the game log go
// through the API handler itself (Options.API), so they are validated,
// authorized and audited as API requests are.
package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

// Cookie names. The session cookie is HttpOnly, Secure, SameSite=Strict;
// the login cookie carries the login form's CSRF token before a session
// exists (double submit).
const (
	sessionCookie = "l4m_session"
	loginCookie   = "l4m_login"
)

// DefaultSessionTTL is how long a login lasts.
const DefaultSessionTTL = 8 * time.Hour

// Limiter slows down failed logins per client address: the API server's
// failed-token limiter, so that guessing passwords here and guessing
// tokens at the API spend from the same bucket.
type Limiter interface {
	// Exhausted reports whether key has failed too often, and how long
	// until it may try again.
	Exhausted(key string) (time.Duration, bool)
	// Spend records a failure of key.
	Spend(key string)
}

// Options are what the dashboard shares with the API server.
type Options struct {
	Store *storage.Store
	Authn *auth.Authenticator
	Authz *auth.Authorizer
	// API serves an API request as the auth.User in its context, without
	// authenticating it again (the API server's Handler.ServeAs).
	API          http.Handler
	FailedLogins Limiter
	// Audit records each login attempt and logout in the API's audit log
	// (nil: none): who (the name tried, or the token's holder), the verb
	// ("login", "logout"), the HTTP code and the client's address.
	Audit func(user, verb string, code int, remote string)
	// SessionTTL is how long a login lasts (0: DefaultSessionTTL).
	SessionTTL time.Duration
	Log        logr.Logger
}

// UI is the dashboard's handler.
type UI struct {
	o        Options
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New returns the dashboard.
func New(o Options) (*UI, error) {
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	u := &UI{o: o, sessions: newSessions(o.SessionTTL), mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	for _, p := range []string{"login", "fleet", "instance", "blueprint", "overlay", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", p, err)
		}
		u.pages[p] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	u.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServer(http.FS(static))))
	u.mux.HandleFunc("GET /ui/login", u.loginPage)
	u.mux.HandleFunc("POST /ui/login", u.login)
	u.mux.HandleFunc("POST /ui/logout", u.authed(u.logout))
	u.mux.HandleFunc("GET /ui/{$}", u.authed(u.fleet))
	u.mux.HandleFunc("GET /ui/fleet/events", u.authed(u.fleetEvents))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/instances/{name}", u.authed(u.instance))
	u.mux.HandleFunc("POST /ui/namespaces/{ns}/instances/{name}/state", u.authed(u.setState))
	u.mux.HandleFunc("POST /ui/namespaces/{ns}/instances/{name}/restart", u.authed(u.restart))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/instances/{name}/log", u.authed(u.log))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/instances/{name}/console", u.authed(u.console))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/instances/{name}/players", u.authed(u.players))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/blueprints/{name}", u.authed(u.blueprint))
	u.mux.HandleFunc("GET /ui/namespaces/{ns}/overlays/{name}", u.authed(u.overlay))
	u.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, nil, http.StatusNotFound, "no such page: "+r.URL.Path)
	})
	return u, nil
}

// Streams reports a path whose answer lasts as long as the browser
// listens (the fleet's events, a game's log): no write deadline for it.
func Streams(path string) bool {
	return path == "/ui/fleet/events" || strings.HasSuffix(path, "/log") || strings.HasSuffix(path, "/console")
}

// csp allows this origin's scripts and styles only: no inline script, so
// an injected <script> never runs; no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP sets the security headers of every answer, refuses a POST from
// another origin, and routes.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		u.fail(w, r, nil, http.StatusForbidden, "cross-origin request refused (the Origin or Referer header must name this server)")
		return
	}
	u.mux.ServeHTTP(w, r)
}

// sameOrigin checks a state-changing request's Origin (or, without one,
// its Referer) against the host it was sent to: a form on another site
// cannot post here even with the cookie (SameSite=Strict already keeps it
// back; this does not rely on the browser alone). Neither header: refused.
func sameOrigin(r *http.Request) bool {
	want := "https://" + r.Host
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	ref, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || ref.Scheme == "" {
		return false
	}
	return ref.Scheme+"://"+ref.Host == want
}

// caller is a request's session and the user it acts as now.
type caller struct {
	id   string
	sess *session
	user *auth.User
	// until is when the session ends: live streams end then too.
	until time.Time
}

type authedFunc func(http.ResponseWriter, *http.Request, *caller)

// validPathNames refuses a namespace or name in the URL that no object can
// have, before it is used to build an API path.
func validPathNames(r *http.Request) error {
	for _, key := range []string{"ns", "name"} {
		if v := r.PathValue(key); v != "" {
			if errs := utilvalidation.IsDNS1123Subdomain(v); len(errs) > 0 {
				return fmt.Errorf("%s %q: %s", key, v, strings.Join(errs, "; "))
			}
		}
	}
	return nil
}

// authed resolves the session cookie to its user, checked again now (a
// deleted user, a changed password or a revoked token ends the session),
// and checks the CSRF token of every POST. Pages without a session go to
// the login page; other requests get 401.
func (u *UI) authed(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := u.resolve(r)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				u.fail(w, r, nil, http.StatusServiceUnavailable, err.Error())
				return
			}
			if r.Method == http.MethodGet && !Streams(r.URL.Path) {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
				return
			}
			u.fail(w, r, nil, http.StatusUnauthorized, "not logged in, or the session has ended")
			return
		}
		if err := validPathNames(r); err != nil {
			u.fail(w, r, c, http.StatusNotFound, err.Error())
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.sess.csrf)) != 1 {
				u.fail(w, r, c, http.StatusForbidden, "the form's CSRF token is missing or wrong: reload the page and try again")
				return
			}
		}
		next(w, r, c)
	}
}

func (u *UI) resolve(r *http.Request) (*caller, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, auth.ErrUnauthenticated
	}
	s := u.sessions.get(ck.Value)
	if s == nil {
		return nil, auth.ErrUnauthenticated
	}
	var user *auth.User
	if s.bearer != "" {
		user, err = u.o.Authn.AuthenticateBearer(s.bearer)
	} else {
		user, err = u.o.Authn.LookupUser(r.Context(), s.user, s.stamp)
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		u.sessions.delete(ck.Value)
	}
	if err != nil {
		return nil, err
	}
	return &caller{id: ck.Value, sess: s, user: user, until: s.expires}, nil
}

// recheckInterval is how often a live stream checks that its session
// still stands (user not deleted, password not changed, token not revoked)
// and, for the fleet, that the user still sees the same namespaces. A
// variable for the tests.
var recheckInterval = 10 * time.Second

// streamContext ends with the request (the browser going, or the server
// stopping: l4m-server's requests derive from its own context), at the
// session's expiry, or within recheckInterval of the session ending
// otherwise (logout, a deleted user, a new password, a revoked token). Its
// checker goroutine ends with it.
func (u *UI) streamContext(r *http.Request, c *caller) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithDeadline(r.Context(), c.until)
	every := recheckInterval // read here: the goroutine may outlive a test that sets it
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := u.resolve(r.WithContext(ctx)); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a post-login redirect on the dashboard (no open redirect).
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix) && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return Prefix
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	u.renderLogin(w, r, http.StatusOK, "")
}

func (u *UI) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	setCookie(w, loginCookie, tok, 600)
	u.render(w, code, "login", map[string]any{"CSRF": tok, "Error": msg, "Next": safeNext(r.FormValue("next"))})
}

// login checks a name and password, or a pasted token, and starts a
// session. A failure spends from the address's failed-login bucket (the
// API's); once it is empty every attempt gets 429, right or wrong.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ck.Value)) != 1 {
		u.renderLogin(w, r, http.StatusForbidden, "The login form expired or its CSRF token is wrong: try again.")
		return
	}
	host := remoteHost(r)
	if wait, over := u.o.FailedLogins.Exhausted(host); over {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Seconds()+0.999))))
		u.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed logins from this address: wait and retry.")
		return
	}
	s := &session{}
	who := "(token)"
	if tok := strings.TrimSpace(r.PostFormValue("token")); tok != "" {
		var user *auth.User
		user, err = u.o.Authn.AuthenticateBearer(tok)
		if err == nil && user.Type != v1.TokenUser {
			err = auth.ErrUnauthenticated // node and join tokens do not log in here
		}
		if err == nil {
			who = user.Name
		}
		s.bearer = tok
	} else {
		name := strings.TrimSpace(r.PostFormValue("username"))
		_, s.stamp, err = u.o.Authn.AuthenticatePassword(r.Context(), name, r.PostFormValue("password"))
		s.user, who = name, "user:"+name
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		u.o.FailedLogins.Spend(host)
		u.audit(who, "login", http.StatusUnauthorized, r)
		u.renderLogin(w, r, http.StatusUnauthorized, "Wrong name or password, or an invalid token.")
		return
	}
	if err != nil {
		u.renderLogin(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	id, ok := u.sessions.create(s)
	if !ok {
		u.renderLogin(w, r, http.StatusServiceUnavailable, "Too many sessions on this server: try again later.")
		return
	}
	if old, err := r.Cookie(sessionCookie); err == nil {
		u.sessions.delete(old.Value) // a new login never keeps an old id
	}
	u.audit(who, "login", http.StatusSeeOther, r)
	setCookie(w, loginCookie, "", -1)
	setCookie(w, sessionCookie, id, int(u.o.SessionTTL.Seconds()))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (u *UI) audit(user, verb string, code int, r *http.Request) {
	if u.o.Audit != nil {
		u.o.Audit(user, verb, code, r.RemoteAddr)
	}
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, c *caller) {
	u.audit(c.user.Name, "logout", http.StatusSeeOther, r)
	u.sessions.delete(c.id)
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
