package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/node/extract"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/store"
)

// Materializer writes an Overlay's content into a staging tree of the
// node's store (node/store), which then checks, seals and names it. Each
// source kind but path maps to one (Options.Materializers): files are
// written by the agent itself (FilesMaterializer); archive, git and
// workshop by the unprivileged fetcher (node/sources). A kind with no
// materializer holds its Instances with OverlaySourceNotSupported.
type Materializer interface {
	// Scheme is how the store names what Materialize writes.
	Scheme() store.Scheme
	// Key is the entry ov's content will be, when the spec alone says so
	// (files: its FilesDigest, which the control plane computes too); ok
	// is false when only the fetched tree can tell. With a key the agent
	// skips Materialize while the entry is in the store; without one it
	// runs it once per source spec (and fingerprint, for a Checker: the
	// store's index remembers what each gave).
	Key(ov *v1.Overlay) (k store.Key, ok bool, err error)
	// Materialize writes ov's tree into work/tree (which it makes, 0755),
	// rooted at the game root (a source's into already applied). work is
	// root's, 0700, empty, and the Materializer's alone until it returns:
	// it may hand it to an unprivileged account for a unit's run and take
	// it back, and keep its own files beside the tree (the store keeps
	// only the tree). It must not return while anything it started can
	// still write there: the store checks the tree once, and then trusts
	// it. pin is what the last Check found ({} when there was none): a git
	// source fetches pin.Commit, so the fleet runs what was checked. An
	// error may implement Failure for its reason word.
	Materialize(ctx context.Context, ov *v1.Overlay, pin Fetched, work string) (Fetched, error)
}

// Checker is a Materializer whose source can change while its spec does
// not: a git branch or tag moves, a Workshop item is updated. Every
// CheckInterval the agent asks Check what the source names now, and
// fetches again when its Fingerprint differs from the one the entry was
// fetched at; Instances then roll onto the new entry.
type Checker interface {
	// CheckInterval is how often ov's source is checked (0: never, a
	// git commit id).
	CheckInterval(ov *v1.Overlay) time.Duration
	// Check resolves the source without fetching it; work is a staging
	// directory as Materialize's, removed after (a fetcher's unit needs
	// one to run in).
	Check(ctx context.Context, ov *v1.Overlay, work string) (Fetched, error)
}

// Fetched is what a fetch or a check learned besides the tree: shown in
// the Node's and the Overlay's status, and what decides whether a source
// changed.
type Fetched struct {
	// Commit is the commit a git ref resolved to.
	Commit string `json:"commit,omitempty"`
	// Items are the Workshop items, collections expanded.
	Items []v1.WorkshopItem `json:"items,omitempty"`
}

// Fingerprint names what the source held: its commit, or each item's id
// and time_updated ("" when it says nothing, as for an archive).
func (f Fetched) Fingerprint() string {
	if f.Commit != "" {
		return "commit:" + f.Commit
	}
	if len(f.Items) == 0 {
		return ""
	}
	h := sha256.New()
	items := slices.Clone(f.Items)
	// The tree holds <id>.vpk whatever the order: a collection reordered
	// on Steam is the same content.
	slices.SortFunc(items, func(x, y v1.WorkshopItem) int { return strings.Compare(x.ID, y.ID) })
	for _, it := range items {
		var t int64
		if it.TimeUpdated != nil {
			t = it.TimeUpdated.Unix()
		}
		fmt.Fprintf(h, "%s %d\n", it.ID, t)
	}
	return "items:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// overlayFailure is a fetched Overlay's failure with its reason word.
type overlayFailure struct {
	reason string
	err    error
}

func (f overlayFailure) Error() string         { return f.err.Error() }
func (f overlayFailure) Unwrap() error         { return f.err }
func (f overlayFailure) FailureReason() string { return f.reason }

// Reasons of a fetched Overlay's failure (NodeOverlay.Reason, and the
// Instances' OverlaysReady condition).
const (
	ReasonOverlaySourceNotSupported = "OverlaySourceNotSupported"
	ReasonInvalidFiles              = "InvalidFiles"
	ReasonUnsafeEntry               = "UnsafeEntry"
	ReasonOverLimit                 = "OverLimit"
	ReasonDigestMismatch            = "DigestMismatch"
	ReasonStoreUnavailable          = "StoreUnavailable"
	ReasonFetchFailed               = "FetchFailed"
)

// overlayReason is the reason word of a fetched Overlay's failure.
func overlayReason(err error) string {
	var f Failure
	switch {
	case errors.As(err, &f) && f.FailureReason() != "":
		return f.FailureReason()
	case errors.Is(err, extract.ErrUnsafe):
		return ReasonUnsafeEntry
	case errors.Is(err, extract.ErrLimit):
		return ReasonOverLimit
	}
	return ReasonFetchFailed
}

// FilesMaterializer writes a files source: each file through safefs (no
// symlink followed, created O_EXCL), regular files 0644 in directories
// 0755, root's. The content comes from the API object, validated there and
// again here.
type FilesMaterializer struct{}

// Scheme is store.SchemeFiles: the entry is named by FilesDigest.
func (FilesMaterializer) Scheme() store.Scheme { return store.SchemeFiles }

// Key is the entry of the spec's FilesDigest, the Overlay's digest in the
// API too.
func (FilesMaterializer) Key(ov *v1.Overlay) (store.Key, bool, error) {
	if err := checkFiles(ov); err != nil {
		return store.Key{}, false, err
	}
	k, err := store.NewKey(store.SchemeFiles, v1.FilesDigest(ov.Spec.Source.Files))
	return k, err == nil, err
}

// Materialize writes the files below work/tree, in byte order of their
// paths.
func (FilesMaterializer) Materialize(ctx context.Context, ov *v1.Overlay, _ Fetched, work string) (Fetched, error) {
	return Fetched{}, writeFiles(ov, work)
}

func writeFiles(ov *v1.Overlay, work string) error {
	if err := checkFiles(ov); err != nil {
		return err
	}
	w, err := safefs.Open(work)
	if err != nil {
		return err
	}
	defer w.Close()
	root, err := w.MkdirAll("tree", safefs.Owner{UID: 0, GID: 0, Mode: 0o755})
	if err != nil {
		return err
	}
	defer root.Close()
	files := ov.Spec.Source.Files
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := writeInlineFile(root, p, files[p]); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

func writeInlineFile(root *safefs.Dir, p, content string) error {
	parent := root
	if d := filepath.Dir(p); d != "." {
		var err error
		if parent, err = root.MkdirAll(d, safefs.Owner{UID: 0, GID: 0, Mode: 0o755}); err != nil {
			return err
		}
		defer parent.Close()
	}
	f, err := parent.Create(filepath.Base(p), 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkFiles holds a files source to the API's rules again (the node
// checks what it writes as root, whatever the API let through).
func checkFiles(ov *v1.Overlay) error {
	if ov.Spec.Source.Kind() != v1.SourceFiles {
		return fmt.Errorf("not a files source")
	}
	if errs := validation.ValidateOverlaySpec(&ov.Spec, field.NewPath("spec")); len(errs) > 0 {
		return overlayFailure{ReasonInvalidFiles, errs.ToAggregate()}
	}
	return nil
}

// overlayState is what the agent knows of the fetched Overlays (every
// source but path) its Instances stack.
type overlayState struct {
	// gc is held for reading while an Overlay is resolved to a store entry
	// (and the entry pinned) and for writing while the store is collected,
	// so GC never removes an entry between its check and its pin.
	gc sync.RWMutex

	mu    sync.Mutex
	store *store.Store // nil: the store could not be opened (storeErr says why)
	// storeErr is why the store is not there.
	storeErr error
	index    store.Index
	// users: Overlay "ns/name" → the Instances ("ns/name") whose last
	// reconcile stacked it.
	users map[string]map[string]bool
	// status: each used Overlay's last outcome on this node.
	status map[string]v1.NodeOverlay
	// held: the entries each Overlay's games were started from (spec.json),
	// as the last collection found them.
	held map[string][]store.Key
	// pinned: entries a reconcile resolved and has not recorded yet.
	pinned map[store.Key]int
	// sources serializes the work on one source spec: two Instances that
	// share an Overlay get one copy, written once.
	sources map[string]*sourceLock
	// retryCheck: when a source spec whose check failed is checked again.
	retryCheck map[string]checkRetryState
	// inflight: the source specs a background job fetches or checks.
	inflight map[string]bool
	// failedFetch: a source (spec, and fingerprint when checked) whose
	// fetch failed, and when it may be fetched again. Every Instance
	// stacking it gets the same failure meanwhile: without it each of
	// their reconciles fetched it again, and each failure's new status
	// brought the next round.
	failedFetch map[string]fetchFailure
	// requests: the checkRequestedAt value last acted on, by source spec.
	requests map[string]string
	wake     chan struct{}
}

// checkRetryState is a source whose checks fail: how often, and when the
// next one is due.
type checkRetryState struct {
	failures int
	at       time.Time
}

// fetchFailure is a failed fetch of one source, remembered until RetryAt.
type fetchFailure struct {
	Err      error
	Failures int
	RetryAt  time.Time
}

// First and longest wait before a failed source is fetched again.
const (
	firstFetchRetry = 30 * time.Second
	maxFetchRetry   = 10 * time.Minute
)

// fetchRetryAfter is the wait after n failed fetches in a row (n >= 1).
func fetchRetryAfter(n int) time.Duration {
	d := firstFetchRetry
	for i := 1; i < n && d < maxFetchRetry; i++ {
		d *= 2
	}
	return min(d, maxFetchRetry)
}

type sourceLock struct {
	mu   sync.Mutex
	refs int
}

func newOverlayState() *overlayState {
	return &overlayState{users: map[string]map[string]bool{}, status: map[string]v1.NodeOverlay{},
		held: map[string][]store.Key{}, pinned: map[store.Key]int{}, sources: map[string]*sourceLock{}, retryCheck: map[string]checkRetryState{}, inflight: map[string]bool{},
		failedFetch: map[string]fetchFailure{}, requests: map[string]string{},
		wake: make(chan struct{}, 1), index: store.NewIndex()}
}

// storeRoot is overlays/.store.
func (a *Agent) storeRoot() string { return filepath.Join(a.paths.Overlays(), store.DirName) }

// openStore opens the store at start. A store that cannot be opened (not
// root's, a symlink in its place) fails only the fetched Overlays, with
// the reason; path overlays and running games go on.
func (a *Agent) openStore() {
	s, err := store.Open(a.storeRoot(), extract.Limits{})
	var idx store.Index
	if err == nil {
		if idx, err = s.ReadIndex(); err != nil {
			// A damaged index loses only which entry was the previous one:
			// what games run is in their records.
			a.o.Log.Error(err, "cannot read the overlay store's index; starting a new one")
			err = nil
		}
	}
	a.ov.mu.Lock()
	defer a.ov.mu.Unlock()
	if err != nil {
		a.o.Log.Error(err, "the overlay store is unavailable; Instances stacking fetched Overlays wait", "store", a.storeRoot())
		a.ov.storeErr = err
		return
	}
	a.ov.store, a.ov.index = s, idx
}

// sourceHash names an Overlay's source spec (not its name: two Overlays
// with the same source share the work and the entry).
func sourceHash(ov *v1.Overlay) string {
	src := *ov.Spec.Source.DeepCopy()
	// How often a source is checked is not what it holds: editing the
	// interval must not fetch it all again.
	if src.Git != nil {
		src.Git.CheckInterval = ""
	}
	if src.Workshop != nil {
		src.Workshop.CheckInterval = ""
	}
	data, _ := json.Marshal(src)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// lockSource serializes the work on one source spec.
func (s *overlayState) lockSource(src string) (unlock func()) {
	s.mu.Lock()
	l := s.sources[src]
	if l == nil {
		l = &sourceLock{}
		s.sources[src] = l
	}
	l.refs++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.sources, src)
		}
		s.mu.Unlock()
	}
}

// checkRetry is how soon a source whose check failed is first checked
// again (doubling up to its interval); its Instances keep the entry
// fetched before meanwhile.
const checkRetry = time.Minute

// ReasonFetching is an Instance's OverlaysReady reason while a source it
// stacks is being fetched (in the background: a fetch may take far longer
// than a reconcile).
const ReasonFetching = "OverlayFetching"

// ensureOverlay resolves a fetched Overlay to a store entry and pins the
// entry until unpin: the caller renders its mount from it and records it.
// A files source the store lacks is written here and now (it is quick); an
// archive, git or workshop source is fetched in the background (startFetch)
// and this returns a ReasonFetching Failure meanwhile, so that a download
// of an hour holds no worker, no lock and no reconcile's deadline: the
// fetch requeues the Instances when it ends. A Checker's source whose
// interval has passed is checked in the background too, its Instances
// going on with the entry they have. Errors carry the reason word
// (Failure).
func (a *Agent) ensureOverlay(ctx context.Context, ov *v1.Overlay) (k store.Key, err error) {
	digest := ""
	defer func() {
		var f overlayFailure
		if err != nil && !(errors.As(err, &f) && f.reason == ReasonFetching) {
			a.setOverlayStatus(ov, v1.NodeOverlay{Digest: digest, Phase: v1.OverlayPhaseFailed, Reason: overlayReason(err), Message: err.Error()})
		}
	}()
	kind := ov.Spec.Source.Kind()
	m := a.o.Materializers[kind]
	if m == nil {
		return k, overlayFailure{ReasonOverlaySourceNotSupported, fmt.Errorf(
			"its source is %s, and this node has no fetcher for it", kind)}
	}
	a.ov.mu.Lock()
	s, storeErr := a.ov.store, a.ov.storeErr
	a.ov.mu.Unlock()
	if s == nil {
		return k, overlayFailure{ReasonStoreUnavailable, fmt.Errorf("the node's overlay store is unavailable: %w", storeErr)}
	}
	want, known, err := m.Key(ov)
	if err != nil {
		return k, err
	}
	if known {
		digest = want.Digest()
	}
	a.ov.gc.RLock()
	defer a.ov.gc.RUnlock()
	spec := kind + "/" + sourceHash(ov)
	unlock := a.ov.lockSource(spec)
	defer unlock()
	if known {
		return a.ensureKnown(ctx, ov, m, s, spec, want)
	}
	requested := a.checkRequested(ov, spec)
	src, pin := spec, Fetched{}
	var interval time.Duration
	if c, ok := m.(Checker); ok {
		interval = c.CheckInterval(ov)
	}
	a.ov.mu.Lock()
	res, resolved := a.ov.index.Resolved[spec]
	a.ov.mu.Unlock()
	if resolved && interval > 0 {
		pin = decodeFetched(res.Info)
		src = spec + "@" + res.Fingerprint
		if a.checkDue(spec, res, interval, requested) {
			a.startFetch(ov, m, spec, fetchJob{check: true, was: res, interval: interval})
		}
	}
	a.ov.mu.Lock()
	want, known = a.ov.index.Sources[src]
	a.ov.mu.Unlock()
	if known {
		has, err := s.Has(want)
		if err != nil {
			return k, err
		}
		if has {
			return want, a.resolvedOverlay(ov, src, spec, want, nil)
		}
	}
	a.ov.mu.Lock()
	failed, hasFailed := a.ov.failedFetch[src]
	a.ov.mu.Unlock()
	if hasFailed && time.Now().Before(failed.RetryAt) && !requested {
		return k, failed.Err
	}
	a.startFetch(ov, m, spec, fetchJob{pin: pin, interval: interval})
	return k, overlayFailure{ReasonFetching, fmt.Errorf("its %s source is being fetched", kind)}
}

// ensureKnown is ensureOverlay for a source whose spec names its entry
// (files): written now, under the caller's locks, when the store lacks it.
func (a *Agent) ensureKnown(ctx context.Context, ov *v1.Overlay, m Materializer, s *store.Store, spec string, want store.Key) (store.Key, error) {
	has, err := s.Has(want)
	if err != nil {
		return store.Key{}, err
	}
	if has {
		return want, a.resolvedOverlay(ov, spec, spec, want, nil)
	}
	a.ov.mu.Lock()
	failed, hasFailed := a.ov.failedFetch[spec]
	a.ov.mu.Unlock()
	if hasFailed && time.Now().Before(failed.RetryAt) {
		return store.Key{}, failed.Err
	}
	a.setOverlayStatus(ov, v1.NodeOverlay{Digest: want.Digest(), Phase: v1.OverlayPhaseFetching})
	a.fetches.add(ov.Spec.Source.Kind(), false)
	st, err := s.Stage()
	if err != nil {
		return store.Key{}, overlayFailure{ReasonStoreUnavailable, err}
	}
	if _, err := m.Materialize(ctx, ov, Fetched{}, st.Dir); err != nil {
		if derr := st.Discard(); derr != nil {
			a.o.Log.Error(derr, "cannot remove a failed overlay's staging tree", "overlay", key(ov.Namespace, ov.Name))
		}
		a.fetchFailed(ctx, ov, spec, err)
		return store.Key{}, err
	}
	k, err := s.Add(st, m.Scheme())
	if err != nil {
		a.fetchFailed(ctx, ov, spec, err)
		return k, err
	}
	a.ov.mu.Lock()
	delete(a.ov.failedFetch, spec)
	a.ov.mu.Unlock()
	if k != want {
		// The spec names the content: writing something else is a bug,
		// and stacking it would run what nobody asked for.
		return k, overlayFailure{ReasonDigestMismatch, fmt.Errorf("wrote content of digest %s, but its spec's is %s", k.Digest(), want.Digest())}
	}
	return k, a.resolvedOverlay(ov, spec, spec, k, nil)
}

// fetchJob is a background fetch or check of one source spec.
type fetchJob struct {
	// check: resolve the source first (was: what it held); fetch only
	// when that changed and the store lacks the new content.
	check bool
	was   store.Resolution
	// pin is what to fetch (a git commit checked before).
	pin Fetched
	// interval is the source's check interval (0: never checked).
	interval time.Duration
}

// checkDue says whether a checked source's interval (or its retry after a
// failed check) has passed, or a check was requested.
func (a *Agent) checkDue(spec string, res store.Resolution, interval time.Duration, requested bool) bool {
	a.ov.mu.Lock()
	retryAt := a.ov.retryCheck[spec].at
	a.ov.mu.Unlock()
	now := time.Now()
	return requested || (now.Sub(res.At) >= interval && !now.Before(retryAt))
}

// startFetch runs job for spec in the background, unless one runs already
// (then its result serves this caller too). It ends with the agent (Run
// waits for it), and requeues the namespace's Instances when done.
func (a *Agent) startFetch(ov *v1.Overlay, m Materializer, spec string, job fetchJob) {
	a.ov.mu.Lock()
	if a.ov.inflight[spec] || a.bgCtx == nil {
		a.ov.mu.Unlock()
		return
	}
	a.ov.inflight[spec] = true
	a.ov.mu.Unlock()
	ov = ov.DeepCopy()
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.runFetch(a.bgCtx, ov, m, spec, job)
		a.ov.mu.Lock()
		delete(a.ov.inflight, spec)
		a.ov.mu.Unlock()
		a.requeueNamespace(ov.Namespace)
	}()
}

// runFetch is a background job: the check, then the fetch, Add and the
// index, on the agent's context (the fetcher's unit has its own timeout).
func (a *Agent) runFetch(ctx context.Context, ov *v1.Overlay, m Materializer, spec string, job fetchJob) {
	ovKey := key(ov.Namespace, ov.Name)
	s := a.ov.store
	pin := job.pin
	if job.check {
		next, changed, ok := a.checkSource(ctx, m.(Checker), ov, spec, job.was, job.interval)
		if !ok || !changed {
			return
		}
		pin = decodeFetched(next.Info)
		a.ov.mu.Lock()
		k, known := a.ov.index.Sources[spec+"@"+next.Fingerprint]
		a.ov.mu.Unlock()
		if known {
			if has, _ := s.Has(k); has {
				return // fetched before: the requeued reconciles stack it
			}
		}
	}
	// src is where ensureOverlay looks for this fetch's failure: the spec
	// and what it was pinned to, when it is checked and was resolved.
	src := spec
	if job.interval > 0 && pin.Fingerprint() != "" {
		src = spec + "@" + pin.Fingerprint()
	}
	a.setOverlayStatus(ov, v1.NodeOverlay{Phase: v1.OverlayPhaseFetching})
	a.fetches.add(ov.Spec.Source.Kind(), false)
	st, err := s.Stage()
	if err != nil {
		a.fetchFailed(ctx, ov, src, overlayFailure{ReasonStoreUnavailable, err})
		return
	}
	began := time.Now()
	got, err := m.Materialize(ctx, ov, pin, st.Dir)
	if err != nil {
		if derr := st.Discard(); derr != nil {
			a.o.Log.Error(derr, "cannot remove a failed overlay's staging tree", "overlay", ovKey)
		}
		a.fetchFailed(ctx, ov, src, err)
		return
	}
	a.ov.gc.RLock()
	defer a.ov.gc.RUnlock()
	k, err := s.Add(st, m.Scheme())
	if err != nil {
		a.fetchFailed(ctx, ov, src, err)
		return
	}
	a.ov.mu.Lock()
	delete(a.ov.failedFetch, src)
	a.ov.mu.Unlock()
	res := store.Resolution{Fingerprint: got.Fingerprint(), Info: encodeFetched(got)}
	src = spec
	if job.interval > 0 {
		res.At = began
		src = spec + "@" + res.Fingerprint
	}
	a.o.Log.Info("overlay stored", "overlay", ovKey, "source", ov.Spec.Source.Kind(), "entry", k.Name(), "fingerprint", res.Fingerprint, "took", time.Since(began).Round(time.Millisecond))
	a.recordOverlay(ov, src, spec, k, &res)
}

// checkRequested says whether the Overlay's left4me.io/checkRequestedAt
// holds a value this agent has not acted on for this Overlay's source spec: then
// the source is checked and a failed fetch tried again now, not at the
// interval or the backoff's end. Called under the source's lock, so the
// first of the Instances stacking it acts, and the others find the result.
func (a *Agent) checkRequested(ov *v1.Overlay, spec string) bool {
	req := ov.Annotations[v1.AnnotationCheckRequestedAt]
	if req == "" {
		return false
	}
	// By Overlay and spec: two Overlays sharing a source each have their
	// own annotation, and neither's value is news to the other.
	k := key(ov.Namespace, ov.Name) + " " + spec
	a.ov.mu.Lock()
	defer a.ov.mu.Unlock()
	if a.ov.requests[k] == req {
		return false
	}
	a.ov.requests[k] = req
	return true
}

// fetchFailed reports a failed fetch of src and remembers it, so the
// Instances sharing it are not fetching it again until the backoff has
// passed (the resync brings them back then). A fetch its context ended (the
// agent stopping) is not a failure.
func (a *Agent) fetchFailed(ctx context.Context, ov *v1.Overlay, src string, err error) {
	if ctx.Err() != nil {
		return
	}
	a.fetches.add(ov.Spec.Source.Kind(), true)
	a.setOverlayStatus(ov, v1.NodeOverlay{Phase: v1.OverlayPhaseFailed, Reason: overlayReason(err), Message: err.Error()})
	ovKey := key(ov.Namespace, ov.Name)
	now := time.Now()
	a.ov.mu.Lock()
	defer a.ov.mu.Unlock()
	for s, f := range a.ov.failedFetch {
		if now.Sub(f.RetryAt) > maxFetchRetry { // a spec long gone
			delete(a.ov.failedFetch, s)
		}
	}
	f := a.ov.failedFetch[src]
	f.Failures++
	f.Err, f.RetryAt = err, now.Add(fetchRetryAfter(f.Failures))
	a.ov.failedFetch[src] = f
	a.o.Log.Info("cannot fetch an overlay; its Instances keep what they run", "overlay", ovKey,
		"reason", overlayReason(err), "error", err.Error(), "attempt", f.Failures, "retryAt", f.RetryAt.Format(time.RFC3339))
}

// checkSource resolves a checked source again (in the background job) and
// records what it holds now. changed says its fingerprint moved from
// was's; ok is false when the check failed: games keep what was fetched,
// the Node's status says so on the entry that stays Ready, and the next
// check waits checkRetry, doubling up to the interval.
func (a *Agent) checkSource(ctx context.Context, c Checker, ov *v1.Overlay, spec string, was store.Resolution, interval time.Duration) (next store.Resolution, changed, ok bool) {
	now := time.Now()
	f, err := a.runCheck(ctx, c, ov)
	if err != nil {
		if ctx.Err() != nil {
			return was, false, false
		}
		a.ov.mu.Lock()
		r := a.ov.retryCheck[spec]
		r.failures++
		wait := min(checkRetry<<min(r.failures-1, 16), max(interval, checkRetry))
		r.at = now.Add(wait)
		a.ov.retryCheck[spec] = r
		st := a.ov.status[key(ov.Namespace, ov.Name)]
		a.ov.mu.Unlock()
		a.o.Log.Info("cannot check an overlay's source; keeping what was fetched", "overlay", key(ov.Namespace, ov.Name),
			"reason", overlayReason(err), "error", err.Error(), "retry", wait)
		if st.Phase == v1.OverlayPhaseReady {
			st.Reason = overlayReason(err)
			st.Message = fmt.Sprintf("the last check failed (again in %s), running what was fetched: %v", wait, err)
			a.setOverlayStatus(ov, st)
		}
		return was, false, false
	}
	next = store.Resolution{At: now, Fingerprint: f.Fingerprint(), Info: encodeFetched(f)}
	changed = next.Fingerprint != was.Fingerprint
	if changed {
		a.o.Log.Info("an overlay's source changed", "overlay", key(ov.Namespace, ov.Name), "was", was.Fingerprint, "now", next.Fingerprint)
	}
	a.ov.mu.Lock()
	delete(a.ov.retryCheck, spec)
	idx := a.ov.index.Clone()
	idx.Resolved[spec] = next
	if err := a.ov.store.WriteIndex(idx); err == nil {
		a.ov.index = idx
	}
	st := a.ov.status[key(ov.Namespace, ov.Name)]
	a.ov.mu.Unlock()
	if !changed && st.Phase == v1.OverlayPhaseReady && st.Reason != "" {
		st.Reason, st.Message = "", "" // a check works again
		a.setOverlayStatus(ov, st)
	}
	return next, changed, true
}

// runCheck runs Check in a staging directory of its own.
func (a *Agent) runCheck(ctx context.Context, c Checker, ov *v1.Overlay) (Fetched, error) {
	st, err := a.ov.store.Stage()
	if err != nil {
		return Fetched{}, overlayFailure{ReasonStoreUnavailable, err}
	}
	defer func() {
		if err := st.Discard(); err != nil {
			a.o.Log.Error(err, "cannot remove a check's staging directory", "dir", st.Dir)
		}
	}()
	return c.Check(ctx, ov, st.Dir)
}

func encodeFetched(f Fetched) json.RawMessage {
	if f.Commit == "" && len(f.Items) == 0 {
		return nil
	}
	// What the fetcher said is bounded as the API bounds it (the index
	// must stay readable: a hostile fetcher could inflate its items).
	f.Items = boundedItems(f.Items)
	data, _ := json.Marshal(f) // plain data: cannot fail
	return data
}

func decodeFetched(data json.RawMessage) Fetched {
	var f Fetched
	if len(data) > 0 {
		json.Unmarshal(data, &f) // a damaged index names no commit: it is refetched
	}
	return f
}

// resolvedOverlay pins entry k for a reconcile about to stack it, and
// records it (recordOverlay).
func (a *Agent) resolvedOverlay(ov *v1.Overlay, src, spec string, k store.Key, res *store.Resolution) error {
	a.ov.mu.Lock()
	a.ov.pinned[k]++
	a.ov.mu.Unlock()
	a.recordOverlay(ov, src, spec, k, res)
	return nil
}

// recordOverlay records that an Overlay's source (src: its spec hash, and
// fingerprint when checked) gave entry k, and res, when new, what the spec
// was found to hold: its newest in the index, Ready.
func (a *Agent) recordOverlay(ov *v1.Overlay, src, spec string, k store.Key, res *store.Resolution) {
	ovKey := key(ov.Namespace, ov.Name)
	a.ov.mu.Lock()
	history := a.ov.index.Overlays[ovKey]
	changed := len(history) == 0 || history[0] != k || a.ov.index.Sources[src] != k || res != nil
	var err error
	if changed { // rarely: the index is copied and written only then
		next := a.ov.index.Clone()
		next.Overlays[ovKey] = store.Remember(history, k)
		next.Sources[src] = k
		if res != nil {
			next.Resolved[spec] = *res
		}
		if err = a.ov.store.WriteIndex(next); err == nil {
			a.ov.index = next
		}
	}
	info := decodeFetched(a.ov.index.Resolved[spec].Info)
	if res != nil {
		info = decodeFetched(res.Info) // what was fetched, whether or not the index could say so
	}
	prev := a.ov.status[ovKey]
	a.ov.mu.Unlock()
	if err != nil {
		// Only the memory of which entry is the previous one is at stake.
		a.o.Log.Error(err, "cannot record an overlay in the store's index", "overlay", ovKey)
	}
	if changed {
		a.wakeStoreGC() // the entry before the previous one may be unused now
	}
	st := v1.NodeOverlay{Digest: k.Digest(), Phase: v1.OverlayPhaseReady, Commit: info.Commit, Items: info.Items}
	if prev.Phase == v1.OverlayPhaseReady && prev.Digest == st.Digest && res == nil {
		st.Reason, st.Message = prev.Reason, prev.Message // a failed check's note stays until a check works
	}
	a.setOverlayStatus(ov, st)
}

func (a *Agent) unpin(k store.Key) {
	a.ov.mu.Lock()
	defer a.ov.mu.Unlock()
	if a.ov.pinned[k]--; a.ov.pinned[k] <= 0 {
		delete(a.ov.pinned, k)
	}
}

// setOverlayStatus records an Overlay's outcome for the spec of its
// generation, and has the heartbeat report it when it changed.
func (a *Agent) setOverlayStatus(ov *v1.Overlay, st v1.NodeOverlay) {
	ovKey := key(ov.Namespace, ov.Name)
	st.Namespace, st.Name, st.ObservedGeneration = ov.Namespace, ov.Name, ov.Generation
	// What goes into the heartbeat must pass the API's checks, or the
	// whole heartbeat is refused: a materializer's reason word is made one.
	if st.Reason != "" {
		st.Reason = reasonWord(st.Reason)
	}
	if len(st.Message) > validation.MaxMessageLength {
		st.Message = strings.ToValidUTF8(st.Message[:validation.MaxMessageLength], "")
	}
	if st.Commit != "" && !v1.IsCommitID(st.Commit) {
		st.Commit = ""
	}
	st.Items = boundedItems(st.Items)
	a.ov.mu.Lock()
	changed := fmt.Sprint(a.ov.status[ovKey]) != fmt.Sprint(st)
	a.ov.status[ovKey] = st
	a.ov.mu.Unlock()
	if changed {
		a.nudgeStatus()
	}
}

// boundedItems are Workshop items as the API takes them in a status: at
// most MaxWorkshopItemsStatus, valid ids, titles cut to their bound.
func boundedItems(items []v1.WorkshopItem) []v1.WorkshopItem {
	var out []v1.WorkshopItem
	for _, it := range items {
		if len(out) == validation.MaxWorkshopItemsStatus {
			break
		}
		if !v1.IsWorkshopID(it.ID) || it.Size < 0 {
			continue
		}
		if len(it.Title) > validation.MaxWorkshopTitleLength {
			it.Title = strings.ToValidUTF8(it.Title[:validation.MaxWorkshopTitleLength], "")
		}
		out = append(out, it)
	}
	return out
}

// useOverlays records which fetched Overlays ("ns/name") an Instance's
// reconcile stacked (none: stopped, refused early, or gone). An Overlay no
// Instance uses any more leaves the Node's status, and its entries may go.
func (a *Agent) useOverlays(instance string, overlays []string) {
	a.ov.mu.Lock()
	changed := false
	want := map[string]bool{}
	for _, o := range overlays {
		want[o] = true
		if !a.ov.users[o][instance] {
			if a.ov.users[o] == nil {
				a.ov.users[o] = map[string]bool{}
			}
			a.ov.users[o][instance] = true
			changed = true
		}
	}
	for o, users := range a.ov.users {
		if users[instance] && !want[o] {
			delete(users, instance)
			changed = true
			if len(users) == 0 {
				delete(a.ov.users, o)
				delete(a.ov.status, o)
			}
		}
	}
	a.ov.mu.Unlock()
	if changed {
		a.nudgeStatus()
		a.wakeStoreGC()
	}
}

// nodeOverlays is status.overlays: each fetched Overlay an Instance here
// stacks, with the digests of it the store holds (newest first: the
// index's, then any older one a game still runs).
func (a *Agent) nodeOverlays() []v1.NodeOverlay {
	a.ov.mu.Lock()
	defer a.ov.mu.Unlock()
	out := make([]v1.NodeOverlay, 0, len(a.ov.users))
	for o := range a.ov.users {
		st, ok := a.ov.status[o]
		if !ok {
			ns, name, _ := strings.Cut(o, "/")
			st = v1.NodeOverlay{Namespace: ns, Name: name, Phase: v1.OverlayPhasePending}
		}
		seen := map[store.Key]bool{}
		for _, k := range append(append([]store.Key{}, a.ov.index.Overlays[o]...), a.ov.held[o]...) {
			if !seen[k] && len(st.Digests) < validation.MaxNodeOverlayDigests {
				seen[k] = true
				st.Digests = append(st.Digests, k.Digest())
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	if len(out) > validation.MaxNodeOverlays {
		out = out[:validation.MaxNodeOverlays]
	}
	return heartbeatItems(out)
}

// Bounds of the Workshop items a heartbeat carries: the whole Node status
// goes in one request (the API takes 1 MiB), and a tenant's collections
// must not fill it. Past them an Overlay's items are left out (describe
// shows none for it; the digest and the rollout do not depend on them);
// titles are for people, and cut.
const (
	maxHeartbeatItems        = 2000
	maxHeartbeatOverlayItems = 500
	maxHeartbeatTitle        = 128
)

// heartbeatItems bounds the items in status.overlays (a copy; the agent's
// own state keeps them whole).
func heartbeatItems(list []v1.NodeOverlay) []v1.NodeOverlay {
	budget := maxHeartbeatItems
	for i := range list {
		items := list[i].Items
		if len(items) > maxHeartbeatOverlayItems || len(items) > budget {
			list[i].Items = nil
			continue
		}
		budget -= len(items)
		out := make([]v1.WorkshopItem, len(items))
		for j, it := range items {
			if len(it.Title) > maxHeartbeatTitle {
				it.Title = strings.ToValidUTF8(it.Title[:maxHeartbeatTitle], "")
			}
			out[j] = it
		}
		list[i].Items = out
	}
	return list
}

// reasonWord is s as a CamelCase word the API takes: letters and digits,
// an upper-case first letter, at most 64 characters.
func reasonWord(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		s = ReasonFetchFailed + s
	}
	return s[:min(len(s), 64)]
}

func (a *Agent) wakeStoreGC() {
	select {
	case a.ov.wake <- struct{}{}:
	default:
	}
}

// collectStoreLoop removes store entries nothing needs, when woken (a
// game left an entry, an Instance went) and every resync period.
func (a *Agent) collectStoreLoop(ctx context.Context) {
	t := time.NewTicker(a.o.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.ov.wake:
		case <-t.C:
		}
		a.collectStore()
	}
}

// collectStore removes the entries store.GC picks: none a game here was
// started from (spec.json), stacks (a mount unit) or a reconcile is about
// to stack, and none among an used Overlay's current and previous ones.
// It waits for every Instance to be reconciled once since the agent
// started: until then which Overlays are used is not known.
func (a *Agent) collectStore() {
	a.mu.Lock()
	synced := !a.syncedAt.IsZero()
	a.mu.Unlock()
	a.ov.mu.Lock()
	s := a.ov.store
	a.ov.mu.Unlock()
	if !synced || s == nil {
		return
	}
	a.ov.gc.Lock()
	defer a.ov.gc.Unlock()
	entries, err := s.List()
	if err != nil {
		a.o.Log.Error(err, "cannot list the overlay store")
		return
	}
	inUse, held, err := a.storeEntriesInUse()
	if err != nil {
		a.o.Log.Error(err, "cannot tell which store entries the games use; removing none")
		return
	}
	a.ov.mu.Lock()
	used := map[string]bool{}
	for o := range a.ov.users {
		used[o] = true
	}
	for k := range a.ov.pinned {
		inUse[k] = true
	}
	idx := a.ov.index.Prune(used, entries)
	remove := store.GC(entries, inUse, idx.Overlays)
	a.ov.mu.Unlock()
	removed := map[store.Key]bool{}
	for _, k := range remove {
		if err := s.Remove(k); err != nil {
			a.o.Log.Error(err, "cannot remove an unused overlay store entry", "entry", k.Name())
			continue
		}
		removed[k] = true
		a.o.Log.Info("removed an overlay store entry nothing uses", "entry", k.Name())
	}
	var present []store.Key
	for _, k := range entries {
		if !removed[k] {
			present = append(present, k)
		}
	}
	a.ov.mu.Lock()
	next := a.ov.index.Prune(used, present)
	changed := len(removed) > 0 || fmt.Sprint(held) != fmt.Sprint(a.ov.held)
	a.ov.held = held
	if !next.Equal(a.ov.index) {
		changed = true
		if err := s.WriteIndex(next); err != nil {
			a.o.Log.Error(err, "cannot write the overlay store's index")
		} else {
			a.ov.index = next
		}
	}
	a.ov.mu.Unlock()
	if changed {
		a.nudgeStatus()
	}
}

// storeEntriesInUse are the entries this host's games were started from
// (their spec.json, by Overlay too) or stack (what the mount units name:
// a unit written just before a crash whose record was not counts too).
func (a *Agent) storeEntriesInUse() (map[store.Key]bool, map[string][]store.Key, error) {
	inUse := map[store.Key]bool{}
	held := map[string][]store.Key{}
	entries, err := os.ReadDir(filepath.Join(a.o.Root, "instances"))
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, err
	}
	for _, e := range entries {
		r := a.installedRecord(e.Name())
		for name, entry := range r.Spec.OverlayEntries {
			k, err := store.ParseKey(entry)
			if err != nil {
				continue
			}
			inUse[k] = true
			o := key(r.Spec.Namespace, name)
			held[o] = append(held[o], k)
		}
	}
	files, err := a.o.Systemd.UnitFiles()
	if err != nil {
		return nil, nil, fmt.Errorf("list mount units: %w", err)
	}
	prefix := a.storeRoot() + "/"
	for _, f := range files {
		if !strings.HasSuffix(f, ".mount") {
			continue
		}
		text, err := a.o.Systemd.ReadUnit(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read mount unit %s: %w", f, err)
		}
		for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == ':' || r == ',' || r == '=' || r == '\n' }) {
			if rest, ok := strings.CutPrefix(part, prefix); ok {
				name, _, _ := strings.Cut(rest, "/")
				if k, err := store.ParseKey(name); err == nil {
					inUse[k] = true
				}
			}
		}
	}
	for o := range held {
		sort.Slice(held[o], func(i, j int) bool { return held[o][i].Name() < held[o][j].Name() })
		held[o] = compactKeys(held[o])
	}
	return inUse, held, nil
}

func compactKeys(ks []store.Key) []store.Key {
	var out []store.Key
	for i, k := range ks {
		if i == 0 || k != ks[i-1] {
			out = append(out, k)
		}
	}
	return out
}
