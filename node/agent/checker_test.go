package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/node/store"
)

// movingBranch is a git-like source whose branch the test moves: Check
// says where it points, Materialize writes a tree naming the commit it
// was pinned to (or the branch's, unpinned).
type movingBranch struct {
	mu               sync.Mutex
	commit           string
	checkErr         error
	checks, fetches  int
	resolves         int // Key calls: one per reconcile that stacks it
	pinnedTo, wrotes []string
}

func (b *movingBranch) Scheme() store.Scheme { return store.SchemeTree }

func (b *movingBranch) Key(*v1.Overlay) (store.Key, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resolves++
	return store.Key{}, false, nil
}

func (b *movingBranch) resolved() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resolves
}

func (b *movingBranch) CheckInterval(*v1.Overlay) time.Duration { return 50 * time.Millisecond }

func (b *movingBranch) Check(_ context.Context, _ *v1.Overlay, work string) (Fetched, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checks++
	if b.checkErr != nil {
		return Fetched{}, b.checkErr
	}
	return Fetched{Commit: b.commit}, nil
}

func (b *movingBranch) Materialize(_ context.Context, _ *v1.Overlay, pin Fetched, work string) (Fetched, error) {
	b.mu.Lock()
	commit := b.commit
	if pin.Commit != "" {
		commit = pin.Commit
	}
	b.fetches++
	b.pinnedTo = append(b.pinnedTo, pin.Commit)
	b.mu.Unlock()
	cfg := filepath.Join(work, "tree", "left4dead2", "cfg")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		return Fetched{}, err
	}
	for _, d := range []string{"tree", "tree/left4dead2", "tree/left4dead2/cfg"} {
		os.Chmod(filepath.Join(work, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(cfg, "branch.cfg"), []byte("// "+commit+"\n"), 0o644); err != nil {
		return Fetched{}, err
	}
	return Fetched{Commit: commit}, nil
}

func (b *movingBranch) set(commit string, checkErr error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commit, b.checkErr = commit, checkErr
}

func (b *movingBranch) counts() (checks, fetches int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checks, b.fetches
}

// TestMovedBranchRollsOut: a git branch is fetched once; when a check
// finds it moved, the node fetches the new commit (pinned to what the
// check saw), reports it, and the empty game restarts onto it with the
// spec unchanged. A failing check keeps the game and the entry as they
// are, and fetches nothing.
func TestMovedBranchRollsOut(t *testing.T) {
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	branch := &movingBranch{commit: c1}
	h := startWith(t, func(_ *server.Server, o *Options) {
		o.Materializers = map[string]Materializer{v1.SourceGit: branch}
		o.Resync = 100 * time.Millisecond // reconciles, and so checks, come often
	})
	h.create(
		&v1.Overlay{ObjectMeta: om("comp"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{URL: "https://git.example/comp.git", Ref: "main"}}}},
		&v1.Blueprint{ObjectMeta: om("versus"), Spec: v1.BlueprintSpec{Overlays: []string{"comp"}, Game: v1.GameSpec{Mode: "versus"}}},
		&v1.Instance{ObjectMeta: om("vs-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "versus"}, NodeName: "n1"}},
	)
	runsCommit := func(commit string) func(*v1.Instance) bool {
		return func(in *v1.Instance) bool {
			if !meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive) || in.Status.PendingTemplateHash != "" {
				return false
			}
			for _, l := range lowers(t, h.mountOf("vs-1")) {
				if data, err := os.ReadFile(filepath.Join(l, "left4dead2/cfg/branch.cfg")); err == nil {
					return string(data) == "// "+commit+"\n"
				}
			}
			return false
		}
	}
	h.until("vs-1", "running the branch's first commit", runsCommit(c1))
	h.nodeOverlay("comp", "Ready at the first commit", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseReady && e.Commit == c1
	})
	h.overlayStatus("comp", "naming the first commit", func(ov *v1.Overlay) bool { return ov.Status.Commit == c1 && ov.Status.Ready == 1 })
	if _, fetches := branch.counts(); fetches != 1 {
		t.Fatalf("fetched %d times before the branch moved, want once", fetches)
	}

	branch.set(c2, nil)
	h.until("vs-1", "restarted onto the moved branch", runsCommit(c2))
	h.overlayStatus("comp", "naming the new commit", func(ov *v1.Overlay) bool { return ov.Status.Commit == c2 && ov.Status.Ready == 1 })
	branch.mu.Lock()
	pins := append([]string(nil), branch.pinnedTo...)
	branch.mu.Unlock()
	if len(pins) != 2 || pins[0] != "" || pins[1] != c2 {
		t.Errorf("fetches pinned to %q, want the first unpinned and the second to the checked commit", pins)
	}

	branch.set(strings.Repeat("3", 40), errors.New("git.example: connection refused"))
	checks, fetches := branch.counts()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if now, _ := branch.counts(); now > checks {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the branch was not checked again")
		}
	}
	// The next reconciles keep the game on what it runs: the failed check
	// is not a failed Overlay, and is retried only after checkRetry.
	h.restartsNone("vs-1", 5, branch.resolved)
	if now, f := branch.counts(); f != fetches || now != checks+1 {
		t.Errorf("after a failing check: %d checks (was %d), %d fetches (was %d); want one check, no fetch", now, checks, f, fetches)
	}
	h.until("vs-1", "still on the commit it runs", runsCommit(c2))
	h.nodeOverlay("comp", "still Ready at the commit it holds", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseReady && e.Commit == c2
	})

	// The server is back: an admin need not wait out the retry, a check
	// request has the node look now.
	c3 := strings.Repeat("3", 40)
	branch.set(c3, nil)
	h.annotateOverlay("comp", v1.AnnotationCheckRequestedAt, time.Now().UTC().Format(time.RFC3339))
	h.until("vs-1", "restarted onto the commit a requested check found", runsCommit(c3))
}

// annotateOverlay sets an annotation on an Overlay.
func (h *harness) annotateOverlay(name, k, v string) {
	h.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v)
	if _, err := h.admin.Patch(context.Background(), overlayRes, "default", name, "application/merge-patch+json", []byte(patch), false); err != nil {
		h.t.Fatal(err)
	}
}

// restartsNone waits for n more reconciles of an Instance (as reconciles
// counts them) and fails if its game restarted meanwhile.
func (h *harness) restartsNone(name string, n int, reconciles func() int) {
	h.t.Helper()
	pid := h.pid(name)
	want := reconciles() + n
	for deadline := time.Now().Add(10 * time.Second); reconciles() < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s was reconciled %d times, want %d more", name, reconciles(), n)
		}
	}
	if now := h.pid(name); now != pid {
		h.t.Fatalf("%s restarted (pid %d, was %d)", name, now, pid)
	}
}

// TestFingerprint: a Workshop item updated (time_updated), added or
// dropped is a new fingerprint; the same items, titles edited, are not; a
// commit names itself; an archive's result names nothing.
func TestFingerprint(t *testing.T) {
	at := func(sec int64) *metav1.Time { t := metav1.Unix(sec, 0); return &t }
	items := func(its ...v1.WorkshopItem) Fetched { return Fetched{Items: its} }
	base := items(v1.WorkshopItem{ID: "3001", Title: "Dark Carnival Remix", TimeUpdated: at(100)}, v1.WorkshopItem{ID: "3002", TimeUpdated: at(100)})
	same := items(v1.WorkshopItem{ID: "3001", Title: "Dark Carnival Remix (v2 soon)", Size: 5, TimeUpdated: at(100)}, v1.WorkshopItem{ID: "3002", TimeUpdated: at(100)})
	if base.Fingerprint() != same.Fingerprint() {
		t.Error("a title edit changed the fingerprint: the file did not change")
	}
	reordered := items(base.Items[1], base.Items[0])
	if reordered.Fingerprint() != base.Fingerprint() {
		t.Error("a collection reordered on Steam changed the fingerprint: the tree is the same")
	}
	for name, f := range map[string]Fetched{
		"an item updated": items(v1.WorkshopItem{ID: "3001", TimeUpdated: at(200)}, v1.WorkshopItem{ID: "3002", TimeUpdated: at(100)}),
		"an item added":   items(v1.WorkshopItem{ID: "3001", TimeUpdated: at(100)}, v1.WorkshopItem{ID: "3002", TimeUpdated: at(100)}, v1.WorkshopItem{ID: "3003"}),
		"an item dropped": items(v1.WorkshopItem{ID: "3001", TimeUpdated: at(100)}),
	} {
		if f.Fingerprint() == base.Fingerprint() || !strings.HasPrefix(f.Fingerprint(), "items:") {
			t.Errorf("%s: fingerprint %q, want a new items: one", name, f.Fingerprint())
		}
	}
	if got := (Fetched{Commit: strings.Repeat("a", 40)}).Fingerprint(); got != "commit:"+strings.Repeat("a", 40) {
		t.Errorf("a commit's fingerprint: %q", got)
	}
	if got := (Fetched{}).Fingerprint(); got != "" {
		t.Errorf("nothing's fingerprint: %q", got)
	}
}

// TestSourceHashIgnoresTheInterval: editing how often a source is checked
// is the same source (nothing is fetched again); editing what it names is
// not.
func TestSourceHashIgnoresTheInterval(t *testing.T) {
	git := func(ref, interval string) *v1.Overlay {
		return &v1.Overlay{Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{URL: "https://git.example/cfg.git", Ref: ref, CheckInterval: interval}}}}
	}
	if sourceHash(git("main", "10m")) != sourceHash(git("main", "1m")) {
		t.Error("a new git checkInterval is a new source")
	}
	if sourceHash(git("main", "10m")) == sourceHash(git("v2", "10m")) {
		t.Error("a new ref is the same source")
	}
	ws := func(interval string) *v1.Overlay {
		return &v1.Overlay{Spec: v1.OverlaySpec{Source: v1.OverlaySource{Workshop: &v1.WorkshopSource{Items: []string{"3001"}, CheckInterval: interval}}}}
	}
	if sourceHash(ws("1h")) != sourceHash(ws("5m")) {
		t.Error("a new workshop checkInterval is a new source")
	}
	if ov := ws("5m"); sourceHash(ov) != "" && ov.Spec.Source.Workshop.CheckInterval != "5m" {
		t.Error("sourceHash changed the Overlay it hashed")
	}
}

// TestHeartbeatItems: a node's status carries Workshop items within a
// budget, titles cut, so that large collections cannot make the heartbeat
// too large for the API.
func TestHeartbeatItems(t *testing.T) {
	item := func(i int) v1.WorkshopItem {
		return v1.WorkshopItem{ID: fmt.Sprint(1000 + i), Title: strings.Repeat("t", 400)}
	}
	some := func(n int) []v1.WorkshopItem {
		var out []v1.WorkshopItem
		for i := range n {
			out = append(out, item(i))
		}
		return out
	}
	list := []v1.NodeOverlay{{Name: "a", Items: some(3)}, {Name: "big", Items: some(maxHeartbeatOverlayItems + 1)}}
	for i := range 5 {
		list = append(list, v1.NodeOverlay{Name: fmt.Sprint("c", i), Items: some(maxHeartbeatOverlayItems)})
	}
	got := heartbeatItems(list)
	total := 0
	for _, e := range got {
		total += len(e.Items)
		for _, it := range e.Items {
			if len(it.Title) > maxHeartbeatTitle {
				t.Fatalf("%s: a title of %d bytes", e.Name, len(it.Title))
			}
		}
	}
	if len(got[0].Items) != 3 || got[1].Items != nil || total > maxHeartbeatItems {
		t.Fatalf("items: a %d, big %d, total %d", len(got[0].Items), len(got[1].Items), total)
	}
}
