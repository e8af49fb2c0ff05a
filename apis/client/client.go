// Package client is the typed REST client of the left4me API. l4mctl, the
// node agent and the controllers use it; it never touches etcd. Errors from
// the server come back as *apierrors.StatusError, so apierrors.IsNotFound
// and friends work on them.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/version"
)

// Config says where the API is and who is asking.
type Config struct {
	// Server is the base URL, e.g. https://127.0.0.1:6443, or several,
	// comma-separated, of l4m-servers sharing one etcd: a request that
	// cannot connect to one goes to the next.
	Server string
	// Token is a bearer token (empty: none).
	Token string
	// CAData is the PEM bundle the server's certificate must chain to
	// (empty: the system roots).
	CAData []byte
	// HTTPClient overrides the transport (TLS settings live there).
	HTTPClient *http.Client
	// NoRetry returns 429 Too Many Requests to the caller at once instead
	// of waiting the Retry-After the server asks for (up to 10 times).
	NoRetry bool
}

// Client talks to the API, through one of its servers.
type Client struct {
	bases   []*url.URL
	current atomic.Int32 // index into bases of the server that answered last
	token   string
	http    *http.Client
	noRetry bool
}

// New checks the config and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" {
		return nil, fmt.Errorf("no API server given (set server in the config file or --server)")
	}
	var bases []*url.URL
	for _, raw := range strings.Split(cfg.Server, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server %q is not an http(s) URL", raw)
		}
		bases = append(bases, u)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t, err := transport(cfg)
		if err != nil {
			return nil, err
		}
		hc = &http.Client{Transport: t}
	}
	return &Client{bases: bases, token: cfg.Token, http: hc, noRetry: cfg.NoRetry}, nil
}

// Close closes the client's idle connections (requests in flight go on).
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Path returns the URL path of a collection, object or subresource.
func Path(res *resources.Resource, namespace, name, subresource string) string {
	p := "/apis/" + v1.Group + "/" + v1.Version
	if res.Namespaced && namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + res.Plural
	if name != "" {
		p += "/" + url.PathEscape(name)
		if subresource != "" {
			p += "/" + subresource
		}
	}
	return p
}

// do sends a request and decodes a 2xx body into out (when not nil), or an
// error body into a StatusError.
// A request refused with 429 (the server's per-credential rate limit) is
// sent again after the Retry-After it names, as kubectl does, so that
// applying a few hundred objects slows down instead of failing.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) (int, error) {
	for attempt := 0; ; attempt++ {
		code, err := c.doOnce(ctx, method, path, query, contentType, body, out)
		delay, limited := apierrors.SuggestsClientDelay(err)
		if !limited || code != http.StatusTooManyRequests || c.noRetry || attempt >= 10 {
			return code, err
		}
		select {
		case <-ctx.Done():
			return code, err
		case <-time.After(time.Duration(max(delay, 1)) * time.Second):
		}
	}
}

func (c *Client) doOnce(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) (int, error) {
	resp, err := c.send(ctx, method, path, query, contentType, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, decodeError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// send tries the server that answered last, and the others in turn when
// it cannot connect (a request that never reached a server is safe to send
// to another).
func (c *Client) send(ctx context.Context, method, path string, query url.Values, contentType string, body []byte) (*http.Response, error) {
	first := int(c.current.Load())
	var err error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		var resp *http.Response
		resp, err = c.sendTo(ctx, c.bases[n], method, path, query, contentType, body)
		if err == nil {
			c.current.Store(int32(n))
			return resp, nil
		}
		var op *net.OpError
		if ctx.Err() != nil || !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
	}
	return nil, err
}

func (c *Client) sendTo(ctx context.Context, base *url.URL, method, path string, query url.Values, contentType string, body []byte) (*http.Response, error) {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	return resp, nil
}

// decodeError rebuilds the server's metav1.Status as a StatusError.
func decodeError(code int, data []byte) error {
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 512 {
		msg = msg[:512] + "…"
	}
	return apierrors.NewGenericServerResponse(code, "", schema.GroupResource{}, "", fmt.Sprintf("HTTP %d: %s", code, msg), 0, false)
}

func dryRunQuery(dry bool) url.Values {
	q := url.Values{}
	if dry {
		q.Set("dryRun", "All")
	}
	return q
}

// Get reads one object.
func (c *Client) Get(ctx context.Context, res *resources.Resource, namespace, name string) (v1.Object, error) {
	obj := res.New()
	_, err := c.do(ctx, http.MethodGet, Path(res, namespace, name, ""), nil, "", nil, obj)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// ListOptions select and page a list or a watch.
type ListOptions struct {
	LabelSelector   string
	FieldSelector   string
	Limit           int64
	Continue        string
	ResourceVersion string
	TimeoutSeconds  int
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.FieldSelector != "" {
		q.Set("fieldSelector", o.FieldSelector)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.FormatInt(o.Limit, 10))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	if o.ResourceVersion != "" {
		q.Set("resourceVersion", o.ResourceVersion)
	}
	if o.TimeoutSeconds > 0 {
		q.Set("timeoutSeconds", strconv.Itoa(o.TimeoutSeconds))
	}
	return q
}

// List reads one page (all of them when opts.Limit is 0). An empty namespace
// lists across namespaces.
func (c *Client) List(ctx context.Context, res *resources.Resource, namespace string, opts ListOptions) (v1.ListObject, error) {
	list := res.NewList()
	_, err := c.do(ctx, http.MethodGet, Path(res, namespace, "", ""), opts.query(), "", nil, list)
	if err != nil {
		return nil, err
	}
	return list, nil
}

// Create stores a new object.
func (c *Client) Create(ctx context.Context, res *resources.Resource, obj v1.Object, dryRun bool) (v1.Object, error) {
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return c.CreateRaw(ctx, res, obj.GetNamespace(), body, dryRun)
}

// CreateRaw posts a JSON body as it is, so the server (not this client)
// decides about unknown or mistyped fields.
func (c *Client) CreateRaw(ctx context.Context, res *resources.Resource, namespace string, body []byte, dryRun bool) (v1.Object, error) {
	return c.CreateWith(ctx, res, namespace, body, WriteOptions{DryRun: dryRun})
}

// WriteOptions are a write's parameters.
type WriteOptions struct {
	DryRun bool
	// FieldManager names the writer in managedFields ("": the server takes
	// the program's name from the User-Agent).
	FieldManager string
}

func (o WriteOptions) query() url.Values {
	q := dryRunQuery(o.DryRun)
	if o.FieldManager != "" {
		q.Set("fieldManager", o.FieldManager)
	}
	return q
}

// CreateWith is CreateRaw with write options.
func (c *Client) CreateWith(ctx context.Context, res *resources.Resource, namespace string, body []byte, opts WriteOptions) (v1.Object, error) {
	out := res.New()
	_, err := c.do(ctx, http.MethodPost, Path(res, namespace, "", ""), opts.query(), "application/json", body, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update replaces an object (compare-and-swap on its resourceVersion).
func (c *Client) Update(ctx context.Context, res *resources.Resource, obj v1.Object, dryRun bool) (v1.Object, error) {
	return c.put(ctx, res, obj, "", dryRun)
}

// UpdateStatus replaces an object's status.
func (c *Client) UpdateStatus(ctx context.Context, res *resources.Resource, obj v1.Object) (v1.Object, error) {
	return c.put(ctx, res, obj, "status", false)
}

func (c *Client) put(ctx context.Context, res *resources.Resource, obj v1.Object, sub string, dryRun bool) (v1.Object, error) {
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	out := res.New()
	_, err = c.do(ctx, http.MethodPut, Path(res, obj.GetNamespace(), obj.GetName(), sub), dryRunQuery(dryRun), "application/json", body, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Patch applies a merge patch ("application/merge-patch+json") or a JSON
// patch ("application/json-patch+json").
func (c *Client) Patch(ctx context.Context, res *resources.Resource, namespace, name, patchType string, patch []byte, dryRun bool) (v1.Object, error) {
	return c.PatchWith(ctx, res, namespace, name, patchType, patch, WriteOptions{DryRun: dryRun})
}

// PatchWith is Patch with write options.
func (c *Client) PatchWith(ctx context.Context, res *resources.Resource, namespace, name, patchType string, patch []byte, opts WriteOptions) (v1.Object, error) {
	out := res.New()
	_, err := c.do(ctx, http.MethodPatch, Path(res, namespace, name, ""), opts.query(), patchType, patch, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyOptions are a server-side apply's parameters.
type ApplyOptions struct {
	// FieldManager owns the fields the configuration names (required).
	FieldManager string
	// Force takes over fields other managers own instead of a 409.
	Force  bool
	DryRun bool
}

// Apply is server-side apply: config (JSON or YAML) is the whole of what
// opts.FieldManager wants of the object, which is created if missing. A
// conflict with another manager is a 409 (apierrors.IsConflict) whose
// message names the fields and managers.
func (c *Client) Apply(ctx context.Context, res *resources.Resource, namespace, name string, config []byte, opts ApplyOptions) (v1.Object, error) {
	q := WriteOptions{DryRun: opts.DryRun, FieldManager: opts.FieldManager}.query()
	if opts.Force {
		q.Set("force", "true")
	}
	out := res.New()
	if _, err := c.do(ctx, http.MethodPatch, Path(res, namespace, name, ""), q, "application/apply-patch+yaml", config, out); err != nil {
		return nil, err
	}
	return out, nil
}

// PatchStatus applies a merge patch to an object's status subresource.
func (c *Client) PatchStatus(ctx context.Context, res *resources.Resource, namespace, name string, patch []byte) (v1.Object, error) {
	out := res.New()
	_, err := c.do(ctx, http.MethodPatch, Path(res, namespace, name, "status"), nil, "application/merge-patch+json", patch, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes an object, or marks it for deletion while finalizers
// remain (gone is false then).
func (c *Client) Delete(ctx context.Context, res *resources.Resource, namespace, name string, dryRun bool) (obj v1.Object, gone bool, err error) {
	out := res.New()
	code, err := c.do(ctx, http.MethodDelete, Path(res, namespace, name, ""), dryRunQuery(dryRun), "", nil, out)
	if err != nil {
		return nil, false, err
	}
	return out, code == http.StatusOK, nil
}

// Watch streams changes. Its ResultChan closes when the server ends the
// watch, ctx ends, or Stop is called; resume from the last resourceVersion.
// A watch from a compacted revision fails with a 410 (apierrors.IsGone or
// IsResourceExpired): list again.
func (c *Client) Watch(ctx context.Context, res *resources.Resource, namespace string, opts ListOptions) (watch.Interface, error) {
	q := opts.query()
	q.Set("watch", "true")
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.send(ctx, http.MethodGet, Path(res, namespace, "", ""), q, "", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		defer cancel()
		data, _ := io.ReadAll(resp.Body)
		return nil, decodeError(resp.StatusCode, data)
	}
	w := &streamWatcher{ch: make(chan watch.Event), cancel: cancel}
	go w.receive(ctx, resp.Body, res)
	return w, nil
}

type streamWatcher struct {
	ch     chan watch.Event
	cancel context.CancelFunc
}

func (w *streamWatcher) ResultChan() <-chan watch.Event { return w.ch }
func (w *streamWatcher) Stop()                          { w.cancel() }

func (w *streamWatcher) receive(ctx context.Context, body io.ReadCloser, res *resources.Resource) {
	defer close(w.ch)
	defer body.Close()
	defer w.cancel()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var raw struct {
			Type   watch.EventType `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			return
		}
		var obj kruntime.Object
		if raw.Type == watch.Error {
			st := &metav1.Status{}
			if json.Unmarshal(raw.Object, st) != nil {
				return
			}
			obj = st
		} else {
			o := res.New()
			if json.Unmarshal(raw.Object, o) != nil {
				return
			}
			obj = o
		}
		select {
		case w.ch <- watch.Event{Type: raw.Type, Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// WaitFor polls get until cond holds or ctx ends; a small helper for --wait
// and tests that a watch would serve no better.
func WaitFor(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Logs streams an Instance's game log (the last tail lines; all when tail
// is negative), following it while follow is set, until ctx ends.
func (c *Client) Logs(ctx context.Context, namespace, name string, follow bool, tail int) (io.ReadCloser, error) {
	res := resources.Instances
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tailLines", strconv.Itoa(tail))
	}
	return c.stream(ctx, Path(res, namespace, name, "log"), q)
}

// stream GETs path and hands over the body of a 200; any other answer is
// decoded as the API's error.
func (c *Client) stream(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, q, "", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return nil, decodeError(resp.StatusCode, data)
	}
	return resp.Body, nil
}

// Version asks the server for its build.
func (c *Client) Version(ctx context.Context) (version.Info, error) {
	var info version.Info
	_, err := c.do(ctx, http.MethodGet, "/version", nil, "", nil, &info)
	return info, err
}

// RCONResult is a console command's answer: its output, cut at 64 KiB
// (Truncated then says so).
type RCONResult struct {
	Output    string `json:"output"`
	Truncated bool   `json:"truncated"`
}

// RCON runs one console command on an Instance's game.
func (c *Client) RCON(ctx context.Context, namespace, name, command string) (RCONResult, error) {
	body, err := json.Marshal(map[string]string{"command": command})
	if err != nil {
		return RCONResult{}, err
	}
	var out RCONResult
	_, err = c.do(ctx, http.MethodPost, Path(resources.Instances, namespace, name, "rcon"), nil, "application/json", body, &out)
	return out, err
}

// Players asks an Instance's game who is on it now (through its node's
// agent: never stored).
func (c *Client) Players(ctx context.Context, namespace, name string) (v1.InstancePlayers, error) {
	var out v1.InstancePlayers
	_, err := c.do(ctx, http.MethodGet, Path(resources.Instances, namespace, name, "players"), nil, "", nil, &out)
	return out, err
}

// UserAgent names the program on every request, as client-go does
// ("l4mctl/v0.3.0 (linux/amd64)"): the server's audit log shows it, and
// managedFields name the program that made a write by it.
var UserAgent = filepath.Base(os.Args[0]) + "/" + version.Version + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"
