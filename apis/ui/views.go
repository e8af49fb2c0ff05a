package ui

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/rollout"
	"github.com/left4me/left4me/apis/storage"
)

var funcs = template.FuncMap{
	"age": func(t metav1.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t.Time).Truncate(time.Second).String()
	},
}

// allowed asks the API's Authorizer whether c's user may do verb on res.
func (u *UI) allowed(ctx context.Context, c *caller, verb string, res *resources.Resource, ns, name, sub string) error {
	_, err := u.o.Authz.Authorize(ctx, c.user, auth.Attributes{Verb: verb, Resource: res, Namespace: ns, Name: name, Subresource: sub})
	return err
}

// scope is what a user may list: every namespace (all) or these.
type scope struct {
	all        bool
	namespaces []string
	nodes      bool
}

func sameScope(a, b scope) bool {
	return a.all == b.all && a.nodes == b.nodes && slices.Equal(a.namespaces, b.namespaces)
}

func (s scope) sees(ns string) bool { return s.all || slices.Contains(s.namespaces, ns) }

// scopeOf asks the Authorizer, namespace by namespace, which Instances the
// user may list: an admin lists across namespaces; anyone else the
// namespaces of their role bindings that the Authorizer confirms.
func (u *UI) scopeOf(ctx context.Context, c *caller) scope {
	var s scope
	s.nodes = u.allowed(ctx, c, "list", resources.Nodes, "", "", "") == nil
	if u.allowed(ctx, c, "list", resources.Instances, "", "", "") == nil {
		s.all = true
		return s
	}
	for _, rb := range c.user.Roles {
		if rb.Namespace != "" && !slices.Contains(s.namespaces, rb.Namespace) &&
			u.allowed(ctx, c, "list", resources.Instances, rb.Namespace, "", "") == nil {
			s.namespaces = append(s.namespaces, rb.Namespace)
		}
	}
	sort.Strings(s.namespaces)
	return s
}

// nodeRow and instanceRow are what the fleet tables show, rendered on the
// page and sent as JSON by the live stream (the script sets them as text,
// never as HTML).
type nodeRow struct {
	Name     string `json:"name"`
	Ready    string `json:"ready"`
	Cordoned string `json:"cordoned"`
	Used     string `json:"used"`
	Build    string `json:"build"`
	Deleted  bool   `json:"deleted,omitempty"`
}

type instanceRow struct {
	Key       string `json:"key"`
	URL       string `json:"url"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Blueprint string `json:"blueprint"`
	BPURL     string `json:"bpURL"`
	Phase     string `json:"phase"`
	Node      string `json:"node"`
	Address   string `json:"address"`
	Map       string `json:"map"`
	Players   string `json:"players"`
	Ready     string `json:"ready"`
	Deleted   bool   `json:"deleted,omitempty"`
}

func conditionStatus(conds []metav1.Condition, t string) string {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return string(c.Status)
	}
	return "-"
}

func nodeOf(in *v1.Instance) string {
	if in.Status.NodeName != "" {
		return in.Status.NodeName
	}
	return in.Spec.NodeName
}

func instanceRowOf(in *v1.Instance) instanceRow {
	r := instanceRow{
		Key: in.Namespace + "/" + in.Name, URL: "/ui/namespaces/" + in.Namespace + "/instances/" + in.Name,
		Namespace: in.Namespace, Name: in.Name, Phase: string(in.Status.Phase), Node: nodeOf(in),
		Blueprint: in.Spec.BlueprintRef.Name, BPURL: "/ui/namespaces/" + in.Namespace + "/blueprints/" + in.Spec.BlueprintRef.Name,
		Map: in.Status.Map, Ready: conditionStatus(in.Status.Conditions, v1.ConditionReady),
	}
	if r.Phase == "" {
		r.Phase = "Pending"
	}
	if in.Status.Address != "" && in.Status.Port != 0 {
		r.Address = in.Status.Address + ":" + strconv.Itoa(int(in.Status.Port))
	}
	if in.Status.MaxPlayers > 0 {
		r.Players = fmt.Sprintf("%d/%d", in.Status.Players, in.Status.MaxPlayers)
	}
	return r
}

func nodeRowOf(n *v1.Node, used int) nodeRow {
	r := nodeRow{Name: n.Name, Ready: conditionStatus(n.Status.Conditions, v1.ConditionReady), Cordoned: "no", Build: n.Status.Installation.Build}
	if n.Spec.Unschedulable {
		r.Cordoned = "yes"
	}
	r.Used = strconv.Itoa(used)
	if c := n.Spec.Capacity.Instances; c > 0 {
		r.Used += "/" + strconv.Itoa(int(c))
	}
	for _, inst := range n.Status.Installations {
		if len(inst.Builds) > 0 {
			r.Build = inst.Name + " " + inst.Builds[0]
			break
		}
	}
	return r
}

// fleetState is the fleet as one user may see it: every Node (with the
// count of all Instances bound to it, capacity being the node's) and the
// Instances of the namespaces in scope.
type fleetState struct {
	scope     scope
	nodes     map[string]*v1.Node
	instances map[string]*v1.Instance // every namespace's, for the counts
}

func (f *fleetState) used(node string) int {
	n := 0
	for _, in := range f.instances {
		if nodeOf(in) == node {
			n++
		}
	}
	return n
}

func (f *fleetState) nodeRows() []nodeRow {
	if !f.scope.nodes {
		return nil
	}
	var rows []nodeRow
	for _, n := range f.nodes {
		rows = append(rows, nodeRowOf(n, f.used(n.Name)))
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

func (f *fleetState) instanceRows() []instanceRow {
	var rows []instanceRow
	for _, in := range f.instances {
		if f.scope.sees(in.Namespace) {
			rows = append(rows, instanceRowOf(in))
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows
}

// loadFleet lists Nodes and Instances, returning the revisions to watch from.
func (u *UI) loadFleet(ctx context.Context, sc scope) (*fleetState, string, string, error) {
	f := &fleetState{scope: sc, nodes: map[string]*v1.Node{}, instances: map[string]*v1.Instance{}}
	nl, err := u.o.Store.List(ctx, resources.Nodes, storage.ListOptions{})
	if err != nil {
		return nil, "", "", fmt.Errorf("list nodes: %w", err)
	}
	for i := range nl.(*v1.NodeList).Items {
		n := &nl.(*v1.NodeList).Items[i]
		f.nodes[n.Name] = n
	}
	il, err := u.o.Store.List(ctx, resources.Instances, storage.ListOptions{})
	if err != nil {
		return nil, "", "", fmt.Errorf("list instances: %w", err)
	}
	for i := range il.(*v1.InstanceList).Items {
		in := &il.(*v1.InstanceList).Items[i]
		f.instances[in.Namespace+"/"+in.Name] = in
	}
	return f, nl.GetResourceVersion(), il.GetResourceVersion(), nil
}

func (u *UI) base(c *caller, title string) map[string]any {
	return map[string]any{"Title": title, "Me": c.user.Name, "CSRF": c.sess.csrf}
}

func (u *UI) fleet(w http.ResponseWriter, r *http.Request, c *caller) {
	sc := u.scopeOf(r.Context(), c)
	f, _, _, err := u.loadFleet(r.Context(), sc)
	if err != nil {
		u.fail(w, r, c, http.StatusServiceUnavailable, err.Error())
		return
	}
	d := u.base(c, "Fleet")
	d["ShowNodes"], d["Nodes"], d["Instances"], d["Namespaces"], d["All"] = sc.nodes, f.nodeRows(), f.instanceRows(), sc.namespaces, sc.all
	u.render(w, http.StatusOK, "fleet", d)
}

// fleetEvents is the fleet page's live feed (Server-Sent Events): a
// snapshot, then each Node and Instance change the user may see, from the
// store's watches. It ends when the browser goes, the session expires or
// the server stops; its watches stop with it.
func (u *UI) fleetEvents(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx, cancel := u.streamContext(r, c)
	defer cancel()
	sc := u.scopeOf(ctx, c)
	f, nrv, irv, err := u.loadFleet(ctx, sc)
	if err != nil {
		u.fail(w, r, c, http.StatusServiceUnavailable, err.Error())
		return
	}
	nw, err := u.o.Store.Watch(ctx, resources.Nodes, storage.ListOptions{ResourceVersion: nrv})
	if err != nil {
		u.fail(w, r, c, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer nw.Stop()
	iw, err := u.o.Store.Watch(ctx, resources.Instances, storage.ListOptions{ResourceVersion: irv})
	if err != nil {
		u.fail(w, r, c, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer iw.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return http.NewResponseController(w).Flush() == nil
	}
	if !send("snapshot", map[string]any{"nodes": f.nodeRows(), "instances": f.instanceRows()}) {
		return
	}
	recheck := time.NewTicker(recheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recheck.C:
			// Roles changed: end, and the browser reconnects to a fresh
			// snapshot of what it may see now (or to a 401).
			now, err := u.resolve(r.WithContext(ctx))
			if err != nil || !sameScope(u.scopeOf(ctx, now), sc) {
				return
			}
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || http.NewResponseController(w).Flush() != nil {
				return
			}
		case ev, ok := <-nw.ResultChan():
			if !ok {
				return // the browser's EventSource reconnects and gets a snapshot
			}
			n, ok := ev.Object.(*v1.Node)
			if !ok || !sc.nodes {
				continue
			}
			row := nodeRowOf(n, f.used(n.Name))
			if ev.Type == "DELETED" {
				delete(f.nodes, n.Name)
				row.Deleted = true
			} else {
				f.nodes[n.Name] = n
			}
			if !send("node", row) {
				return
			}
		case ev, ok := <-iw.ResultChan():
			if !ok {
				return
			}
			in, ok := ev.Object.(*v1.Instance)
			if !ok {
				continue
			}
			k := in.Namespace + "/" + in.Name
			before := ""
			if old := f.instances[k]; old != nil {
				before = nodeOf(old)
			}
			row := instanceRowOf(in)
			if ev.Type == "DELETED" {
				delete(f.instances, k)
				row.Deleted = true
			} else {
				f.instances[k] = in
			}
			if sc.sees(in.Namespace) && !send("instance", row) {
				return
			}
			for _, node := range []string{before, nodeOf(in)} {
				if n := f.nodes[node]; n != nil && sc.nodes && !send("node", nodeRowOf(n, f.used(node))) {
					return
				}
			}
		}
	}
}

// instance shows one Instance: its status, conditions, events, where its
// restart stands and (for editors) its log and the Start/Stop/Restart
// buttons.
func (u *UI) instance(w http.ResponseWriter, r *http.Request, c *caller) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	obj, err := u.getAs(r.Context(), c, "get", resources.Instances, ns, name)
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	in := obj.(*v1.Instance)
	d := u.base(c, "Instance "+ns+"/"+name)
	d["I"], d["Row"] = in, instanceRowOf(in)
	d["CanEdit"] = u.allowed(r.Context(), c, "patch", resources.Instances, ns, name, "") == nil
	d["CanLog"] = u.allowed(r.Context(), c, "get", resources.Instances, ns, name, "log") == nil
	d["CanConsole"] = u.allowed(r.Context(), c, "create", resources.Instances, ns, name, "console") == nil
	d["Events"] = u.eventsAbout(r.Context(), c, ns, "Instance", name)
	d["Restart"] = u.restartOf(r.Context(), c, in)
	d["Players"] = u.playersOf(r, c, ns, name)
	u.render(w, http.StatusOK, "instance", d)
}

// restartView is where an Instance's restart stands, for its page: the
// restart asked for (left4me.io/restartedAt, and whether it is forced and
// not spent yet), the one its game was started with (status.restartedAt),
// and what its rollout waits for, as l4mctl rollout status instance/NAME
// says it (empty when the user may not read the Blueprint or Overlays).
type restartView struct {
	RequestedAt, RunningAt, Status string
	Forced                         bool
}

func (u *UI) restartOf(ctx context.Context, c *caller, in *v1.Instance) restartView {
	v := restartView{RequestedAt: in.Annotations[v1.AnnotationRestartedAt], RunningAt: in.Status.RestartedAt, Forced: rollout.InstanceForced(in)}
	if in.Spec.State == v1.StateStopped {
		v.Status = "Stopped: nothing runs, it starts with the current spec"
		return v
	}
	bp, err := u.getAs(ctx, c, "get", resources.Blueprints, in.Namespace, in.Spec.BlueprintRef.Name)
	if err != nil {
		return v
	}
	overlays, err := u.overlaysIn(ctx, c, in.Namespace)
	if err != nil {
		return v
	}
	p := rollout.Assess(bp.(*v1.Blueprint), overlays, []*v1.Instance{in})
	v.Status = rollout.DescribeInstance(bp.(*v1.Blueprint), in, p, "tick force and press Restart to restart it now")
	return v
}

// getAs reads one object if the Authorizer lets c's user do verb on it
// ("get" to show it, "patch" to act on it).
func (u *UI) getAs(ctx context.Context, c *caller, verb string, res *resources.Resource, ns, name string) (v1.Object, error) {
	if err := u.allowed(ctx, c, verb, res, ns, name, ""); err != nil {
		return nil, err
	}
	return u.o.Store.Get(ctx, res, ns, name)
}

// eventsAbout lists the Events about one object, as l4mctl describe does
// (none when the user may not list Events there).
func (u *UI) eventsAbout(ctx context.Context, c *caller, ns, kind, name string) []v1.Event {
	if u.allowed(ctx, c, "list", resources.Events, ns, "", "") != nil {
		return nil
	}
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}.AsSelector()
	l, err := u.o.Store.List(ctx, resources.Events, storage.ListOptions{Namespace: ns, FieldSelector: sel})
	if err != nil {
		return nil
	}
	items := l.(*v1.EventList).Items
	sort.Slice(items, func(i, j int) bool { return items[i].LastTimestamp.Before(&items[j].LastTimestamp) })
	return items
}

// setState is the Start/Stop buttons: a merge patch of spec.state through
// the API handler, as the session's user, so the API's Authorizer, its
// validation and its audit log see it as any other write (a viewer gets
// the API's 403).
func (u *UI) setState(w http.ResponseWriter, r *http.Request, c *caller) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	state := r.PostFormValue("state")
	if state != string(v1.StateRunning) && state != string(v1.StateStopped) {
		u.fail(w, r, c, http.StatusBadRequest, fmt.Sprintf("state %q: must be Running or Stopped", state))
		return
	}
	body := fmt.Sprintf(`{"spec":{"state":%q}}`, state)
	code, msg := u.callAPI(r, c, http.MethodPatch, apiPath(ns, name), "application/merge-patch+json", body)
	if code != http.StatusOK {
		u.fail(w, r, c, code, msg)
		return
	}
	http.Redirect(w, r, "/ui/namespaces/"+ns+"/instances/"+name, http.StatusSeeOther)
}

// restart is the Restart button: what l4mctl rollout restart
// instance/NAME does, the merge patch of rollout.RestartPatch through the
// API handler as the session's user (force: restart now, players or not).
// The Instance restarts under its Blueprint's rollout rules; its page then
// says what the restart waits for. A Stopped Instance is refused (409), as
// l4mctl refuses it: it has nothing to restart.
func (u *UI) restart(w http.ResponseWriter, r *http.Request, c *caller) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	force, err := formBool(r, "force")
	if err != nil {
		u.fail(w, r, c, http.StatusBadRequest, err.Error())
		return
	}
	obj, err := u.getAs(r.Context(), c, "patch", resources.Instances, ns, name)
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	if obj.(*v1.Instance).Spec.State == v1.StateStopped {
		u.fail(w, r, c, http.StatusConflict, fmt.Sprintf("instance %s/%s is Stopped: nothing to restart (Start starts it with the current spec)", ns, name))
		return
	}
	code, msg := u.callAPI(r, c, http.MethodPatch, apiPath(ns, name), "application/merge-patch+json", string(rollout.RestartPatch(time.Now(), force)))
	if code != http.StatusOK {
		u.fail(w, r, c, code, msg)
		return
	}
	http.Redirect(w, r, "/ui/namespaces/"+ns+"/instances/"+name, http.StatusSeeOther)
}

// formBool reads a checkbox: absent is false, "true" true.
func formBool(r *http.Request, field string) (bool, error) {
	switch v := r.PostFormValue(field); v {
	case "":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("%s %q: must be true or absent", field, v)
	}
}

func apiPath(ns, name string) string {
	return "/apis/" + v1.Group + "/" + v1.Version + "/namespaces/" + ns + "/instances/" + name
}

// callAPI serves one API request as c's user and returns its code and, for
// an error, the metav1.Status message.
func (u *UI) callAPI(r *http.Request, c *caller, method, path, ctype, body string) (int, string) {
	rec, err := u.serveAPI(r, c, method, path, ctype, body)
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	if rec.code == http.StatusOK {
		return rec.code, ""
	}
	var st metav1.Status
	if json.Unmarshal(rec.body.Bytes(), &st) == nil && st.Message != "" {
		return rec.code, st.Message
	}
	return rec.code, strings.TrimSpace(rec.body.String())
}

// serveAPI serves one API request as c's user and returns the answer.
func (u *UI) serveAPI(r *http.Request, c *caller, method, path, ctype, body string) (*recorder, error) {
	req, err := http.NewRequestWithContext(auth.WithUser(r.Context(), c.user), method, path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	req.RemoteAddr = r.RemoteAddr
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	u.o.API.ServeHTTP(rec, req)
	return rec, nil
}

// recorder keeps an API answer (at most 64 KiB of it).
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	r.code = code
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < 64<<10 {
		r.body.Write(b[:min(len(b), 64<<10-r.body.Len())])
	}
	return len(b), nil
}

// log streams the game's log through the API's log relay (the editor role,
// as for l4mctl logs), until the browser goes, the session ends or the
// server stops.
func (u *UI) log(w http.ResponseWriter, r *http.Request, c *caller) {
	ctx, cancel := u.streamContext(r, c)
	defer cancel()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	req, err := http.NewRequestWithContext(auth.WithUser(ctx, c.user), http.MethodGet, apiPath(ns, name)+"/log?follow=true&tailLines=200", nil)
	if err != nil {
		u.fail(w, r, c, http.StatusInternalServerError, err.Error())
		return
	}
	req.RemoteAddr = r.RemoteAddr
	u.o.API.ServeHTTP(w, req)
}

// console opens the Instance page's live console: the API's console
// WebSocket, served as the session's user, so that the API decides who may
// (a viewer gets its 403) and audits each command. A browser sends the
// cookie with any page's WebSocket, so the upgrade must come from this
// origin and carry the session's CSRF token (?csrf=).
func (u *UI) console(w http.ResponseWriter, r *http.Request, c *caller) {
	if !sameOrigin(r) {
		u.fail(w, r, c, http.StatusForbidden, "cross-origin console refused (the Origin header must name this server)")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("csrf")), []byte(c.sess.csrf)) != 1 {
		u.fail(w, r, c, http.StatusForbidden, "the console's CSRF token is missing or wrong: reload the page")
		return
	}
	ctx, cancel := u.streamContext(r, c)
	defer cancel()
	req := r.Clone(auth.WithUser(ctx, c.user))
	req.URL.Path, req.URL.RawQuery, req.RequestURI = apiPath(r.PathValue("ns"), r.PathValue("name"))+"/console", "", ""
	u.o.API.ServeHTTP(w, req)
}

// blueprint shows a Blueprint's Instances and where its rollout stands
// (rollout.Assess, what l4mctl rollout status prints).
func (u *UI) blueprint(w http.ResponseWriter, r *http.Request, c *caller) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	obj, err := u.getAs(r.Context(), c, "get", resources.Blueprints, ns, name)
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	bp := obj.(*v1.Blueprint)
	instances, overlays, err := u.namespaceContent(r.Context(), c, ns)
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	d := u.base(c, "Blueprint "+ns+"/"+name)
	d["B"], d["Rollout"] = bp, rolloutView(bp, overlays, instances)
	d["Events"] = u.eventsAbout(r.Context(), c, ns, "Blueprint", name)
	u.render(w, http.StatusOK, "blueprint", d)
}

// rolloutSummary is one Blueprint's rollout, for the pages.
type rolloutSummary struct {
	Blueprint  string
	Total      int
	Updated    int
	Restarting []string
	Waiting    []string
	Queued     []string
	Complete   bool
	Instances  []instanceRow
}

func rolloutView(bp *v1.Blueprint, overlays map[string]*v1.Overlay, instances []*v1.Instance) rolloutSummary {
	p := rollout.Assess(bp, overlays, instances)
	s := rolloutSummary{Blueprint: bp.Name, Total: p.Total, Updated: p.Updated, Restarting: p.Restarting, Complete: p.Updated == p.Total}
	for _, in := range p.Waiting {
		s.Waiting = append(s.Waiting, fmt.Sprintf("%s (%d players)", in.Name, in.Status.Players))
	}
	for _, in := range p.Queued {
		s.Queued = append(s.Queued, in.Name)
	}
	for _, in := range instances {
		if in.Spec.BlueprintRef.Name == bp.Name {
			s.Instances = append(s.Instances, instanceRowOf(in))
		}
	}
	return s
}

// namespaceContent lists a namespace's Instances and Overlays, each list
// authorized for the user.
func (u *UI) namespaceContent(ctx context.Context, c *caller, ns string) ([]*v1.Instance, map[string]*v1.Overlay, error) {
	if err := u.allowed(ctx, c, "list", resources.Instances, ns, "", ""); err != nil {
		return nil, nil, err
	}
	il, err := u.o.Store.List(ctx, resources.Instances, storage.ListOptions{Namespace: ns})
	if err != nil {
		return nil, nil, fmt.Errorf("list instances in %s: %w", ns, err)
	}
	var instances []*v1.Instance
	for i := range il.(*v1.InstanceList).Items {
		instances = append(instances, &il.(*v1.InstanceList).Items[i])
	}
	sort.Slice(instances, func(i, j int) bool { return instances[i].Name < instances[j].Name })
	overlays, err := u.overlaysIn(ctx, c, ns)
	if err != nil {
		return nil, nil, err
	}
	return instances, overlays, nil
}

// overlaysIn lists a namespace's Overlays by name, authorized for the user.
func (u *UI) overlaysIn(ctx context.Context, c *caller, ns string) (map[string]*v1.Overlay, error) {
	if err := u.allowed(ctx, c, "list", resources.Overlays, ns, "", ""); err != nil {
		return nil, err
	}
	ol, err := u.o.Store.List(ctx, resources.Overlays, storage.ListOptions{Namespace: ns})
	if err != nil {
		return nil, fmt.Errorf("list overlays in %s: %w", ns, err)
	}
	overlays := map[string]*v1.Overlay{}
	for i := range ol.(*v1.OverlayList).Items {
		o := &ol.(*v1.OverlayList).Items[i]
		overlays[o.Name] = o
	}
	return overlays, nil
}

// overlay shows an Overlay's status and, for each Blueprint that stacks
// it, that Blueprint's Instances and rollout.
func (u *UI) overlay(w http.ResponseWriter, r *http.Request, c *caller) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	obj, err := u.getAs(r.Context(), c, "get", resources.Overlays, ns, name)
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	ov := obj.(*v1.Overlay)
	instances, overlays, err := u.namespaceContent(r.Context(), c, ns)
	if err == nil {
		err = u.allowed(r.Context(), c, "list", resources.Blueprints, ns, "", "")
	}
	if err != nil {
		u.failErr(w, r, c, err)
		return
	}
	bl, err := u.o.Store.List(r.Context(), resources.Blueprints, storage.ListOptions{Namespace: ns})
	if err != nil {
		u.failErr(w, r, c, fmt.Errorf("list blueprints in %s: %w", ns, err))
		return
	}
	var rollouts []rolloutSummary
	for i := range bl.(*v1.BlueprintList).Items {
		bp := &bl.(*v1.BlueprintList).Items[i]
		if slices.Contains(bp.Spec.Overlays, name) {
			rollouts = append(rollouts, rolloutView(bp, overlays, instances))
		}
	}
	d := u.base(c, "Overlay "+ns+"/"+name)
	d["O"], d["Rollouts"] = ov, rollouts
	d["Events"] = u.eventsAbout(r.Context(), c, ns, "Overlay", name)
	u.render(w, http.StatusOK, "overlay", d)
}

func (u *UI) render(w http.ResponseWriter, code int, page string, data map[string]any) {
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		u.o.Log.Error(err, "render dashboard page", "page", page)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// failErr answers an API error with its code and message (403 names what
// was refused and why, as the API does).
func (u *UI) failErr(w http.ResponseWriter, r *http.Request, c *caller, err error) {
	code := http.StatusInternalServerError
	if se, ok := err.(apierrors.APIStatus); ok {
		code = int(se.Status().Code)
	}
	u.fail(w, r, c, code, err.Error())
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, c *caller, code int, msg string) {
	d := map[string]any{"Title": http.StatusText(code), "Code": code, "Message": msg}
	if c != nil {
		d["Me"], d["CSRF"] = c.user.Name, c.sess.csrf
	}
	if Streams(r.URL.Path) {
		http.Error(w, msg, code)
		return
	}
	u.render(w, code, "error", d)
}
