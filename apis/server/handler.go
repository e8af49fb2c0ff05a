// Package server is left4me's REST API in the Kubernetes URL layout:
//
//	/apis/left4me.io/v1alpha1/namespaces/{ns}/{overlays|blueprints|instances|events}[/{name}[/status]]
//	/apis/left4me.io/v1alpha1/{nodes|namespaces}[/{name}[/status]]
//	/apis/left4me.io/v1alpha1/{plural}            (lists across namespaces)
//
// It decodes strictly, defaults and validates every object before storage
// sees it, and answers every error as a metav1.Status.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/ui"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/apis/version"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 1 << 20

// Patch content types.
const (
	MergePatchType = "application/merge-patch+json"
	JSONPatchType  = "application/json-patch+json"
)

const apiPrefix = "/apis/" + v1.Group + "/" + v1.Version

func schemaGR(resource string) schema.GroupResource {
	return schema.GroupResource{Group: v1.Group, Resource: resource}
}

// Handler serves the API.
type Handler struct {
	store      *storage.Store
	log        logr.Logger
	metrics    *Metrics
	authn      *auth.Authenticator
	authz      *auth.Authorizer
	audit      *auditor
	limits     *limiters
	failLimits *limiters
	// rconLimits is each user's RCON commands.
	rconLimits *limiters
	maxObjects int
	// requestTimeout bounds every request but watches and log streams.
	requestTimeout time.Duration
	logsCert       *tls.Certificate
	agents         *agentTransports
	// consoles counts live console sessions (waitConsoles).
	consoles sync.WaitGroup
	snapshot SnapshotFunc
	mux      *http.ServeMux
	// dashboard is the web dashboard at /ui/ (package ui).
	dashboard *ui.UI
	// encodings encodes each watch event once for all its watchers.
	encodings *eventEncodings
	// fields keeps managedFields and merges server-side applies.
	fields fieldManagers
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Store   *storage.Store
	Log     logr.Logger
	Metrics *Metrics
	Authn   *auth.Authenticator
	Authz   *auth.Authorizer
	// Audit receives one JSON line per mutating request (nil: none).
	Audit io.Writer
	// RateQPS and RateBurst limit each credential (0: unlimited).
	RateQPS   float64
	RateBurst int
	// MaxObjectsPerNamespace caps each kind in each namespace (0: no cap).
	MaxObjectsPerNamespace int
	// FailedLoginQPS and FailedLoginBurst slow down token guessing: failed
	// logins per remote address (0 QPS: unlimited).
	FailedLoginQPS   float64
	FailedLoginBurst int
	// LogsClientCert is what the API server shows node agents to read game
	// logs (nil: `log` answers 503).
	LogsClientCert *tls.Certificate
	// Snapshot serves GET /snapshot to admins (nil: 404, external etcd).
	Snapshot SnapshotFunc
	// RequestTimeout is how long a request other than a watch or a log
	// stream may take to send its body and read its answer (0:
	// DefaultRequestTimeout).
	RequestTimeout time.Duration
	// DashboardSessionTTL is how long a dashboard login lasts (0:
	// ui.DefaultSessionTTL).
	DashboardSessionTTL time.Duration
}

// NewHandler returns the API handler over a started Store.
func NewHandler(o HandlerOptions) *Handler {
	h := &Handler{
		store: o.Store, log: o.Log, metrics: o.Metrics, authn: o.Authn, authz: o.Authz,
		audit: &auditor{w: o.Audit}, limits: newLimiters(o.RateQPS, o.RateBurst),
		failLimits: newLimiters(o.FailedLoginQPS, o.FailedLoginBurst), rconLimits: newLimiters(rconQPS, rconBurst),
		maxObjects: o.MaxObjectsPerNamespace, logsCert: o.LogsClientCert, agents: newAgentTransports(o.LogsClientCert), mux: http.NewServeMux(),
		requestTimeout: o.RequestTimeout, encodings: newEventEncodings(),
	}
	if h.requestTimeout <= 0 {
		h.requestTimeout = DefaultRequestTimeout
	}
	h.snapshot = o.Snapshot
	h.mux.HandleFunc("GET /apis", h.groupList)
	h.mux.HandleFunc("GET /apis/"+v1.Group, h.group)
	h.mux.HandleFunc("GET "+apiPrefix, h.resourceList)
	h.mux.HandleFunc(apiPrefix+"/", h.serveResource)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, version.Get()) })
	h.mux.Handle("GET /metrics", h.adminOnly(o.Metrics.Handler()))
	h.mux.HandleFunc(snapshotRoute, h.serveSnapshot)
	if err := serveOpenAPI(h.mux); err != nil {
		panic(err) // built from generated code: the openapi package's tests build it too
	}
	fields, ferr := newFieldManagers()
	if ferr != nil {
		panic(ferr) // the same generated schemas
	}
	h.fields = fields
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { h.writeError(w, r, notFoundPath(r.URL.Path)) })
	dash, err := ui.New(ui.Options{
		Store: o.Store, Authn: o.Authn, Authz: o.Authz, API: http.HandlerFunc(h.ServeAs),
		FailedLogins: failedLogins{h.failLimits}, Audit: h.auditDashboard, SessionTTL: o.DashboardSessionTTL, Log: o.Log.WithName("ui"),
	})
	if err != nil {
		panic(err) // the templates are embedded: the package's own tests parse them
	}
	h.dashboard = dash
	return h
}

// ServeAs serves an API request as the auth.User already in its context,
// without authenticating it again: the dashboard's actions and log stream,
// for its session's user, go through the same routing, authorization,
// validation and audit log as l4mctl's requests.
func (h *Handler) ServeAs(w http.ResponseWriter, r *http.Request) {
	user := auth.UserFrom(r.Context())
	if user == nil {
		h.writeError(w, r, apierrors.NewUnauthorized("no user"))
		return
	}
	key := user.TokenID
	if key == "" {
		key = user.Name // a password user ("user:<name>")
	}
	if !h.limits.allow(key) {
		h.writeError(w, r, apierrors.NewTooManyRequests(fmt.Sprintf("%s sends requests faster than allowed; slow down", user.Name), 1))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// auditDashboard records the dashboard's logins and logouts (its other
// writes go through ServeAs and are audited as API requests).
func (h *Handler) auditDashboard(user, verb string, code int, remote string) {
	h.audit.record(auditRecord{Time: time.Now().UTC(), User: user, Verb: verb, Resource: "ui", Code: code, Remote: remote})
}

// failedLogins lends the dashboard the failed-token limiter, so guessed
// passwords and guessed tokens spend from one bucket per address.
type failedLogins struct{ l *limiters }

func (f failedLogins) Exhausted(key string) (time.Duration, bool) { return f.l.exhausted(key) }
func (f failedLogins) Spend(key string)                           { f.l.spend(key) }

// anonymousPaths are served without credentials (load balancers probe them).
var anonymousPaths = map[string]bool{"/healthz": true, "/readyz": true}

// ServeHTTP bounds the request's time, authenticates and rate-limits every
// request but the health probes, then routes it. An address that has failed
// to log in too often is refused before its token is even looked at, so a
// guess that happens to be right gets it nothing either; and a request
// refused before its body is read does not hold its connection waiting for
// that body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, ui.Prefix) {
		// The dashboard has its own login (a session cookie, not a bearer
		// token) and sends its own failures to the same limiter.
		h.setDeadlines(w, ui.Streams(r.URL.Path))
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, ui.Prefix, http.StatusMovedPermanently)
			return
		}
		h.dashboard.ServeHTTP(w, r)
		return
	}
	h.setDeadlines(w, false)
	if anonymousPaths[r.URL.Path] {
		h.mux.ServeHTTP(w, r)
		return
	}
	host := remoteHost(r)
	if wait, over := h.failLimits.exhausted(host); over {
		refuseBody(w, r)
		h.writeError(w, r, apierrors.NewTooManyRequests("too many failed logins from this address; wait and retry", retryAfterSeconds(wait)))
		return
	}
	user, err := h.authn.Authenticate(r)
	if err != nil {
		refuseBody(w, r)
		if !errors.Is(err, auth.ErrUnauthenticated) {
			h.writeError(w, r, err)
			return
		}
		h.failLimits.spend(host)
		rw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.writeError(rw, r, apierrors.NewUnauthorized("a valid bearer token is required (missing, wrong, expired or revoked)"))
		if r.Method != http.MethodGet {
			h.audit.record(auditRecord{Time: time.Now().UTC(), User: "(unauthenticated)", Verb: strings.ToLower(r.Method), Resource: r.URL.Path, Code: rw.code, Remote: r.RemoteAddr})
		}
		return
	}
	if !h.limits.allow(user.TokenID) {
		h.writeError(w, r, apierrors.NewTooManyRequests(fmt.Sprintf("%s sends requests faster than allowed; slow down", user.Name), 1))
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(auth.WithUser(r.Context(), user)))
}

func (h *Handler) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := auth.UserFrom(r.Context()); u == nil || !u.IsAdmin() {
			name := "(unknown)"
			if u != nil {
				name = u.Name
			}
			h.writeError(w, r, apierrors.NewForbidden(schemaGR(""), r.URL.Path, fmt.Errorf("%s may not read metrics: only admins may", name)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := h.store.CurrentRevision(ctx); err != nil {
		http.Error(w, "etcd: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok")
}

// request is a parsed resource URL, with who asks and what they may do.
type request struct {
	res         *resources.Resource
	namespace   string
	name        string
	subresource string
	verb        string
	user        *auth.User
	decision    auth.Decision
	// command is an rcon request's console command, for the audit record.
	command string
	// validation is what a write does with unknown and duplicate fields;
	// warnings collects what it found under Warn, for the response.
	validation fieldValidation
	warnings   []string
	// manager is who makes a write, for managedFields (managerOf).
	manager string
	// creating is set while a create (a POST, or an apply of a missing
	// object) is admitted.
	creating bool
}

// verbOf names a request the way authorization and metrics see it.
func verbOf(r *http.Request, collection bool) string {
	switch {
	case collection && r.Method == http.MethodGet && isTrue(r.URL.Query().Get("watch")):
		return "watch"
	case collection && r.Method == http.MethodGet:
		return "list"
	case collection && r.Method == http.MethodPost:
		return "create"
	case !collection && r.Method == http.MethodGet:
		return "get"
	case !collection && r.Method == http.MethodPut:
		return "update"
	case !collection && r.Method == http.MethodPatch:
		return "patch"
	case !collection && r.Method == http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

func (h *Handler) parse(r *http.Request) (*request, error) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, apiPrefix), "/")
	segs := strings.Split(rest, "/")
	req := &request{}
	if len(segs) >= 3 && segs[0] == "namespaces" && segs[2] != "status" {
		req.namespace = segs[1]
		segs = segs[2:]
		res, ok := resources.ByPlural(segs[0])
		if !ok {
			return nil, notFoundPath(r.URL.Path)
		}
		if !res.Namespaced {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s are cluster-scoped: use %s/%s", res.Plural, apiPrefix, res.Plural))
		}
		req.res = res
	} else {
		res, ok := resources.ByPlural(segs[0])
		if !ok {
			return nil, notFoundPath(r.URL.Path)
		}
		req.res = res
		if res.Namespaced && len(segs) > 1 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s live in namespaces: use %s/namespaces/{namespace}/%s/%s", res.Plural, apiPrefix, res.Plural, segs[1]))
		}
	}
	switch len(segs) {
	case 1:
	case 2:
		req.name = segs[1]
	case 3:
		req.name, req.subresource = segs[1], segs[2]
		switch {
		case req.subresource == "status" && req.res.StatusSubresource():
		case req.subresource == "log" && req.res.Kind == "Instance" && r.Method == http.MethodGet:
		case req.subresource == "rcon" && req.res.Kind == "Instance" && r.Method == http.MethodPost:
		case req.subresource == "console" && req.res.Kind == "Instance" && r.Method == http.MethodGet:
		case req.subresource == "players" && req.res.Kind == "Instance" && r.Method == http.MethodGet:
		default:
			return nil, notFoundPath(r.URL.Path)
		}
	default:
		return nil, notFoundPath(r.URL.Path)
	}
	if req.name == "" && len(segs) > 1 {
		return nil, notFoundPath(r.URL.Path)
	}
	req.verb = verbOf(r, req.name == "")
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		v, err := fieldValidationOf(r)
		if err != nil {
			return nil, err
		}
		req.validation = v
		if req.manager, err = managerOf(r); err != nil {
			return nil, err
		}
	}
	if req.subresource == "rcon" || req.subresource == "console" {
		// Running a console command changes the game: a write.
		req.verb = "create"
	}
	return req, nil
}

func (h *Handler) serveResource(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	req, err := h.parse(r)
	resource := "unknown"
	verb := verbOf(r, false)
	if err == nil {
		resource, verb = req.res.Plural, req.verb
		if streams(req) {
			h.setDeadlines(w, true)
		}
		req.user = auth.UserFrom(r.Context())
		err = h.authorize(r, req)
	}
	if err == nil {
		h.dispatch(rw, r, req)
	} else {
		h.writeError(rw, r, err)
	}
	h.metrics.observe(verb, resource, rw.code, time.Since(start))
	// An opened console was audited when it opened (console).
	if req != nil && mutating(verb) && rw.code != http.StatusSwitchingProtocols {
		h.auditRequest(r, req, start, rw.code)
	}
	if log := h.log.V(1); log.Enabled() {
		log.Info("request", "verb", verb, "path", r.URL.Path, "code", rw.code, "duration", time.Since(start))
	}
}

// auditRequest writes req's audit record.
func (h *Handler) auditRequest(r *http.Request, req *request, at time.Time, code int) {
	dry, _ := dryRun(r)
	h.audit.record(auditRecord{
		Time: at.UTC(), User: req.user.Name, TokenID: req.user.TokenID, Verb: req.verb, Resource: req.res.Plural,
		Subresource: req.subresource, Namespace: req.namespace, Name: req.name, DryRun: dry, Code: code, Remote: r.RemoteAddr,
		Command: req.command,
	})
}

func (h *Handler) authorize(r *http.Request, req *request) error {
	if req.user == nil {
		return apierrors.NewUnauthorized("no credentials")
	}
	attrs := auth.Attributes{Verb: req.verb, Resource: req.res, Subresource: req.subresource, Namespace: req.namespace, Name: req.name}
	if s := r.URL.Query().Get("fieldSelector"); s != "" {
		sel, err := fields.ParseSelector(s)
		if err != nil {
			return apierrors.NewBadRequest("fieldSelector: " + err.Error())
		}
		attrs.FieldSelector = sel
	}
	d, err := h.authz.Authorize(r.Context(), req.user, attrs)
	req.decision = d
	return err
}

// dispatch runs the verb.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, req *request) {
	switch req.verb {
	case "watch":
		h.watch(w, r, req)
	case "list":
		h.list(w, r, req)
	case "create":
		switch req.subresource {
		case "rcon":
			h.rcon(w, r, req)
			return
		case "console":
			h.console(w, r, req)
			return
		}
		if req.res.Namespaced && req.namespace == "" {
			h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("%s live in namespaces: POST to %s/namespaces/{namespace}/%s", req.res.Plural, apiPrefix, req.res.Plural)))
			return
		}
		h.create(w, r, req)
	case "get":
		if req.subresource == "log" {
			h.logs(w, r, req)
			return
		}
		if req.subresource == "players" {
			h.players(w, r, req)
			return
		}
		obj, err := h.store.Get(r.Context(), req.res, req.namespace, req.name)
		h.respondRead(w, r, req, obj, err)
	case "update":
		h.update(w, r, req)
	case "patch":
		if req.name == "" { // a collection takes no patch, as in kube
			h.writeError(w, r, methodNotAllowed(r.Method, req.res.Plural))
			return
		}
		h.patch(w, r, req)
	case "delete":
		if req.subresource != "" || req.name == "" {
			h.writeError(w, r, methodNotAllowed(r.Method, req.res.Plural+"/"+req.subresource))
			return
		}
		h.delete(w, r, req)
	default:
		h.writeError(w, r, methodNotAllowed(r.Method, req.res.Plural))
	}
}

func (h *Handler) respond(w http.ResponseWriter, r *http.Request, code int, obj any, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, code, redacted(obj))
}

func isTrue(s string) bool { return s == "true" || s == "1" }

func dryRun(r *http.Request) (bool, error) {
	switch v := r.URL.Query()["dryRun"]; {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && v[0] == "All":
		return true, nil
	default:
		return false, apierrors.NewBadRequest(fmt.Sprintf("dryRun: unsupported value %q (only \"All\")", strings.Join(v, ",")))
	}
}

// Body media types.
const (
	JSONType = "application/json"
	YAMLType = "application/yaml"
)

// bodyTypes are the media types each method's body may have, as
// kube-apiserver takes them: objects as JSON or YAML, patches as a merge
// patch or a JSON patch, DeleteOptions as JSON. Anything else is 415.
var bodyTypes = map[string][]string{
	http.MethodPost:   {JSONType, YAMLType},
	http.MethodPut:    {JSONType, YAMLType},
	http.MethodPatch:  {MergePatchType, JSONPatchType, ApplyPatchType},
	http.MethodDelete: {JSONType},
}

// bodyType returns the media type of r's body (Content-Type without its
// parameters), or 415 naming it and what the method takes.
func bodyType(r *http.Request) (string, error) {
	accepted := bodyTypes[r.Method]
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && slices.Contains(accepted, mt) {
		return mt, nil
	}
	got := fmt.Sprintf("Content-Type %q", ct)
	if ct == "" {
		got = "no Content-Type"
	}
	return "", &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("unsupported media type: %s with %s; %s takes %s", r.Method, got, r.Method, strings.Join(accepted, " or ")),
	}}
}

// readBody checks the body's media type, reads at most MaxBodyBytes and
// returns JSON (YAML converted). A DELETE may have no body, and then needs
// no type.
func readBody(r *http.Request, req *request) ([]byte, error) {
	if r.Method == http.MethodDelete && r.ContentLength == 0 {
		return nil, nil
	}
	mt, err := bodyType(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest("read request body: " + err.Error())
	}
	if len(data) > MaxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the request body is over the limit of %d bytes", MaxBodyBytes))
	}
	if mt == YAMLType || mt == ApplyPatchType {
		// A key given twice is a duplicate field, as in JSON: refused
		// under Strict validation (converting keeps only the last).
		// (Warn names it, Ignore lets the last one stand.)
		js, err := yaml.YAMLToJSONStrict(data)
		if strictErr := err; err != nil && req != nil && req.validation != fieldValidationStrict {
			if js, err = yaml.YAMLToJSON(data); err == nil && req.validation == fieldValidationWarn {
				req.warnings = append(req.warnings, "the last of a duplicate field counts: "+strictErr.Error())
			}
		}
		if err != nil {
			return nil, apierrors.NewBadRequest("decode YAML body: " + err.Error())
		}
		data = js
	}
	return data, nil
}

// decode decodes an object of the request's kind and refuses mistyped
// fields, and unknown and duplicate ones unless the request's
// fieldValidation lets them through (Warn adds them to req.warnings),
// naming them.
func decode(req *request, data []byte) (v1.Object, error) {
	obj, _, err := decodeReporting(req, data)
	return obj, err
}

// decodeReporting is decode, also returning the paths of the unknown
// fields it let through (Warn, Ignore), as "spec.cvars[1].vaule".
func decodeReporting(req *request, data []byte) (v1.Object, []string, error) {
	res := req.res
	obj := res.New()
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("decode %s: %s", res.Kind, describeJSONError(err)))
	}
	var unknown []string
	for _, e := range strictErrs {
		if fp, ok := e.(interface{ FieldPath() string }); ok && strings.HasPrefix(e.Error(), "unknown field") {
			unknown = append(unknown, fp.FieldPath())
		}
	}
	switch req.validation {
	case fieldValidationIgnore:
		strictErrs = nil
	case fieldValidationWarn:
		for _, e := range strictErrs {
			req.warnings = append(req.warnings, e.Error())
		}
		strictErrs = nil
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("decode %s: %s", res.Kind, strings.Join(msgs, ", ")))
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Kind != "" && gvk.Kind != res.Kind {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("kind %q does not match the URL, which is for %s", gvk.Kind, res.Kind))
	}
	if av := gvk.GroupVersion().String(); gvk.Version != "" && av != v1.APIVersion {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("apiVersion %q is not served here (use %s)", av, v1.APIVersion))
	}
	obj.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
	return obj, unknown, nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: cannot be a JSON %s (want %s)", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

// checkIdentity makes the body agree with the URL.
func checkIdentity(req *request, obj v1.Object) error {
	if req.res.Namespaced {
		switch obj.GetNamespace() {
		case "":
			obj.SetNamespace(req.namespace)
		case req.namespace:
		default:
			return apierrors.NewBadRequest(fmt.Sprintf("metadata.namespace %q does not match the namespace in the URL (%q)", obj.GetNamespace(), req.namespace))
		}
	} else if obj.GetNamespace() != "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s are cluster-scoped: metadata.namespace must be empty, not %q", req.res.Plural, obj.GetNamespace()))
	}
	if req.name != "" && obj.GetName() != req.name {
		return apierrors.NewBadRequest(fmt.Sprintf("metadata.name %q does not match the name in the URL (%q)", obj.GetName(), req.name))
	}
	return nil
}

func invalid(res *resources.Resource, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), name, errs)
}

// admit defaults and validates an object about to be written.
func admit(req *request, obj v1.Object) error {
	if req.subresource == "status" {
		return invalid(req.res, obj.GetName(), validation.ValidateStatus(obj))
	}
	if req.creating && req.res.HasStatus {
		clearStatus(obj) // the status is the server's and the nodes' to write, from the start
	}
	validation.Default(obj)
	if ns, ok := obj.(*v1.Namespace); ok && ns.Status.Phase == "" {
		ns.Status.Phase = v1.NamespaceActive
	}
	return invalid(req.res, obj.GetName(), validation.Validate(obj))
}

// readObject reads the request's object and makes it ready to store:
// strictly decoded, agreeing with the URL, defaulted and validated.
func readObject(r *http.Request, req *request) (v1.Object, bool, error) {
	dry, err := dryRun(r)
	if err != nil {
		return nil, false, err
	}
	data, err := readBody(r, req)
	if err != nil {
		return nil, false, err
	}
	obj, err := admitJSON(req, data)
	return obj, dry, err
}

// admitWrite runs the request's admission (cur is nil on create) and sets
// a User's password; withStatus says the write carries status too.
func admitWrite(ctx context.Context, req *request, cur, obj v1.Object) (withStatus bool, err error) {
	if req.decision.Admit != nil {
		if err := req.decision.Admit(ctx, cur, obj); err != nil {
			return false, err
		}
	}
	return setPassword(req, cur, obj)
}

// admitJSON is decode, checkIdentity and admit in one.
func admitJSON(req *request, data []byte) (v1.Object, error) {
	obj, err := decode(req, data)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(req, obj); err != nil {
		return nil, err
	}
	return obj, admit(req, obj)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, req *request) {
	if req.res.Kind == "Token" {
		h.createToken(w, r, req)
		return
	}
	req.creating = true
	obj, dry, err := readObject(r, req)
	if err == nil && req.decision.Admit != nil {
		err = req.decision.Admit(r.Context(), nil, obj)
	}
	if err == nil {
		_, err = setPassword(req, nil, obj)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	obj = h.fields.track(req, req.manager, nil, obj)
	// The store counts and creates in one step: the quota is exact.
	out, err := h.store.Create(r.Context(), req.res, obj, storage.CreateOptions{DryRun: dry, MaxInNamespace: h.maxObjects})
	writeWarnings(w, req.warnings)
	h.respond(w, r, http.StatusCreated, out, err)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, req *request) {
	obj, dry, err := readObject(r, req)
	var cur v1.Object
	if err == nil { // for admission, a User's password and managedFields
		cur, err = h.store.Get(r.Context(), req.res, req.namespace, req.name)
	}
	if err == nil && req.decision.Admit != nil {
		err = req.decision.Admit(r.Context(), cur, obj)
	}
	withStatus := false
	if err == nil {
		withStatus, err = setPassword(req, cur, obj)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	obj = h.fields.track(req, req.manager, cur, obj)
	out, err := h.store.Update(r.Context(), req.res, obj, userWriteOptions(storage.UpdateOptions{DryRun: dry, Status: req.subresource == "status", Current: cur}, withStatus))
	writeWarnings(w, req.warnings)
	h.respond(w, r, http.StatusOK, out, err)
}

// patch applies a merge patch or a JSON patch to the current object and
// stores the result, retrying on conflict unless the patch itself names a
// resourceVersion (then a stale one is the caller's conflict).
func (h *Handler) patch(w http.ResponseWriter, r *http.Request, req *request) {
	dry, err := dryRun(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ct, err := bodyType(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	patchData, err := readBody(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if ct == ApplyPatchType {
		h.apply(w, r, req, dry, patchData)
		return
	}
	if _, err := forceOf(r, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	var jp jsonpatch.Patch
	if ct == JSONPatchType {
		if jp, err = jsonpatch.DecodePatch(patchData); err != nil {
			h.writeError(w, r, apierrors.NewBadRequest("decode JSON patch: "+err.Error()))
			return
		}
	} else if !json.Valid(patchData) {
		h.writeError(w, r, apierrors.NewBadRequest("the merge patch is not valid JSON"))
		return
	}
	for attempt := 0; ; attempt++ {
		req.warnings = nil // each attempt decodes again
		cur, err := h.store.Get(r.Context(), req.res, req.namespace, req.name)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		curJSON, err := json.Marshal(redacted(cur))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		var patched []byte
		if jp != nil {
			patched, err = jp.Apply(curJSON)
		} else {
			patched, err = jsonpatch.MergePatch(curJSON, patchData)
		}
		if err != nil {
			h.writeError(w, r, apierrors.NewInvalid(req.res.GroupVersionKind().GroupKind(), req.name,
				field.ErrorList{field.Invalid(nil, "", "the patch does not apply: "+err.Error())}))
			return
		}
		obj, err := admitJSON(req, patched)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if obj.GetResourceVersion() == "" {
			obj.SetResourceVersion(cur.GetResourceVersion())
		}
		withStatus, err := admitWrite(r.Context(), req, cur, obj)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		// A patch that names a resourceVersion of its own is a
		// compare-and-swap: its conflict is the caller's to see.
		pinned := obj.GetResourceVersion() != cur.GetResourceVersion()
		obj = h.fields.track(req, req.manager, cur, obj)
		out, err := h.store.Update(r.Context(), req.res, obj, userWriteOptions(storage.UpdateOptions{DryRun: dry, Status: req.subresource == "status", Current: cur}, withStatus))
		if apierrors.IsConflict(err) && !pinned && attempt < 5 {
			continue
		}
		writeWarnings(w, req.warnings)
		h.respond(w, r, http.StatusOK, out, err)
		return
	}
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, req *request) {
	dry, err := dryRun(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	opts := storage.DeleteOptions{DryRun: dry}
	data, err := readBody(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if len(bytes.TrimSpace(data)) > 0 {
		var del metav1.DeleteOptions
		if err := json.Unmarshal(data, &del); err != nil {
			h.writeError(w, r, apierrors.NewBadRequest("decode DeleteOptions: "+err.Error()))
			return
		}
		if p := del.Preconditions; p != nil {
			if p.ResourceVersion != nil {
				opts.ResourceVersion = *p.ResourceVersion
			}
			if p.UID != nil {
				opts.UID = *p.UID
			}
		}
		if len(del.DryRun) > 0 {
			opts.DryRun = true
		}
	}
	obj, gone, err := h.store.Delete(r.Context(), req.res, req.namespace, req.name, opts)
	code := http.StatusOK
	if !gone {
		code = http.StatusAccepted // finalizers still hold it
	}
	h.respond(w, r, code, obj, err)
}

func listOptions(req *request, r *http.Request) (storage.ListOptions, error) {
	q := r.URL.Query()
	opts := storage.ListOptions{Namespace: req.namespace, Continue: q.Get("continue"), ResourceVersion: q.Get("resourceVersion")}
	// A list would otherwise ignore what a watch refuses: both answer 400.
	if rv := opts.ResourceVersion; rv != "" {
		if n, err := strconv.ParseInt(rv, 10, 64); err != nil || n < 0 {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q: must be a number", rv))
		}
	}
	var err error
	if s := q.Get("labelSelector"); s != "" {
		if opts.LabelSelector, err = labels.Parse(s); err != nil {
			return opts, apierrors.NewBadRequest("labelSelector: " + err.Error())
		}
	}
	if s := q.Get("fieldSelector"); s != "" {
		if opts.FieldSelector, err = fields.ParseSelector(s); err != nil {
			return opts, apierrors.NewBadRequest("fieldSelector: " + err.Error())
		}
	}
	if s := q.Get("limit"); s != "" {
		if opts.Limit, err = strconv.ParseInt(s, 10, 64); err != nil || opts.Limit < 0 {
			return opts, apierrors.NewBadRequest(fmt.Sprintf("limit: %q is not a non-negative number", s))
		}
	}
	return opts, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, req *request) {
	opts, err := listOptions(req, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.store.List(r.Context(), req.res, opts)
	h.respondRead(w, r, req, list, err)
}

// respondRead answers a get or a list: the object(s), or the Table of them
// the Accept header asks for (kubectl get).
func (h *Handler) respondRead(w http.ResponseWriter, r *http.Request, req *request, obj any, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	table, err := tableRequest(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if table == nil {
		writeJSON(w, http.StatusOK, redacted(obj))
		return
	}
	t, err := asTable(req.res.Kind, redacted(obj), table)
	h.respond(w, r, http.StatusOK, t, err)
}

// watchEvent is the wire form of one event: {"type":…,"object":…}.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

func (h *Handler) watch(w http.ResponseWriter, r *http.Request, req *request) {
	opts, err := listOptions(req, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if s := r.URL.Query().Get("timeoutSeconds"); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil || secs < 0 {
			h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("timeoutSeconds: %q is not a non-negative number", s)))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
		defer cancel()
	}
	table, err := tableRequest(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	wi, err := h.store.Watch(ctx, req.res, opts)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer wi.Stop()
	h.metrics.watchers.WithLabelValues(req.res.Plural).Inc()
	defer h.metrics.watchers.WithLabelValues(req.res.Plural).Dec()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			var line []byte
			if table != nil {
				// kubectl get -w: a Table of one row per event, made for
				// this watcher alone (the shared encodings are objects).
				line, err = tableEvent(req.res.Kind, ev, table)
			} else {
				line, err = h.encodings.encode(ev)
			}
			if err != nil {
				h.log.Error(err, "encoding a watch event", "resource", req.res.Plural)
				return
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// statusRecorder remembers the code a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// clearStatus zeroes obj's status (every kind with one has a Status field).
func clearStatus(obj v1.Object) {
	if f := reflect.ValueOf(obj).Elem().FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}
