package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
)

// TestOverlayBenchmark measures, on one sandbox host, N Instances
// (default 100) of one Blueprint stacking three fetched Overlays — a
// SourceMod-like archive over HTTP with its sha256, a git branch through
// file://, three Workshop items from the Steam Web API double — from the
// apply (Overlays, Blueprint and every Instance created at once) to every
// Instance Ready and answering A2S; side by side in the same run with the
// same N Instances on three path Overlays holding the same trees on disk,
// which is what an admin would otherwise copy by hand. The difference is
// the node's fetch: download, extract, verify, seal, and the games
// waiting for it.
//
// Rounds alternate, path then fetched, ROUNDS of each (default 3). After
// each everything is deleted and the host waited clean (no Instance,
// unit or mount, the store and its index empty), so every fetched round
// fetches: the archive server and the Steam double count one download of
// each source per round, and the agent logs one "overlay stored" per
// source. Run it with `make bench-overlays`.
func TestOverlayBenchmark(t *testing.T) {
	if os.Getenv("L4M_BENCH") == "" {
		t.Skip("a benchmark: run with L4M_BENCH=1 (make bench-overlays)")
	}
	n, rounds := envInt("N", 100), envInt("ROUNDS", 3)
	// startAgent's --port-range 31000-31100: one game port each.
	if n > 101 {
		t.Fatalf("N=%d: the agent's port range 31000-31100 holds 101 games", n)
	}
	b := newOverlayBench(t, n)
	t.Logf("archive: %d files, %.1f MB, %.1f MB as tar.gz; git: %d files; Workshop: %d items of %.1f MB",
		len(b.sourcemod), float64(treeBytes(b.sourcemod))/1e6, float64(len(b.archive))/1e6, len(benchGitFiles), len(b.items), float64(benchItemBytes)/1e6)

	var path, fetched []roundResult
	for i := range rounds {
		r := b.round(b.pathStack, false)
		t.Logf("round %d, path: all %d Ready after %v (host clean %v after the delete)", i+1, n, r.ready, r.clean)
		path = append(path, r)
		r = b.round(b.fetchedStack, true)
		t.Logf("round %d, fetched: all %d Ready after %v, the Overlays Ready on the node after %v, fetches took %v (host clean %v after the delete)",
			i+1, n, r.ready, r.overlays, r.took, r.clean)
		fetched = append(fetched, r)
	}

	pick := func(rs []roundResult, f func(roundResult) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	pathReady := pick(path, func(r roundResult) time.Duration { return r.ready })
	fetchedReady := pick(fetched, func(r roundResult) time.Duration { return r.ready })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%d Instances, 3 Overlays, %d rounds each\tmedian\tmin\tmax\t\n", n, rounds)
	row := func(name string, d []time.Duration) {
		s := slices.Clone(d)
		slices.Sort(s)
		fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t\n", name, median(s).Round(time.Millisecond), s[0].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
	}
	row("path Overlays: apply → all Ready (A2S)", pathReady)
	row("fetched Overlays: apply → all Ready (A2S)", fetchedReady)
	row("fetched: apply → the 3 Overlays Ready on the node", pick(fetched, func(r roundResult) time.Duration { return r.overlays }))
	row(fmt.Sprintf("fetched: archive fetch (agent's took; %.0f MB, %d files)", float64(treeBytes(b.sourcemod))/1e6, len(b.sourcemod)),
		pick(fetched, func(r roundResult) time.Duration { return r.took["archive"] }))
	row(fmt.Sprintf("fetched: git fetch (agent's took; %d files)", len(b.want)-len(b.sourcemod)-len(b.items)), pick(fetched, func(r roundResult) time.Duration { return r.took["git"] }))
	row(fmt.Sprintf("fetched: workshop fetch (agent's took; %d items, %.0f MB)", len(b.items), float64(len(b.items)*benchItemBytes)/1e6),
		pick(fetched, func(r roundResult) time.Duration { return r.took["workshop"] }))
	row("fetched: the three fetches' took, summed", pick(fetched, func(r roundResult) time.Duration {
		return r.took["archive"] + r.took["git"] + r.took["workshop"]
	}))
	row("path: delete → host clean", pick(path, func(r roundResult) time.Duration { return r.clean }))
	row("fetched: delete → host clean, store empty", pick(fetched, func(r roundResult) time.Duration { return r.clean }))
	fmt.Fprintf(tw, "ratio fetched / path (medians)\t%.2fx\t\t\t\n", float64(median(fetchedReady))/float64(median(pathReady)))
	tw.Flush()
	fmt.Println("reference: `make bench-fetch` times the fetcher on a 500 MB archive vs curl | tar -xz (not run here)")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

const (
	benchArchivePath = "/sourcemod-bench.tar.gz"
	// benchItemBytes is each Workshop item's size: a campaign's VPK.
	benchItemBytes = 4 << 20
)

// benchGitFiles are the git repository's files; the Overlay takes l4d2/.
var benchGitFiles = map[string]string{
	"README.md":                 "competitive configs (not shipped: the Overlay takes l4d2/ only)\n",
	"l4d2/cfg/competitive.cfg":  "// competitive rules from git\nsv_cheats 0\nz_difficulty Hard\n",
	"l4d2/cfg/confogl.cfg":      "// confogl\nconfogl_match_restart 1\n",
	"l4d2/cfg/confogl_off.cfg":  "// confogl off\nconfogl_match_restart 0\n",
	"l4d2/cfg/server_rules.cfg": "sv_alltalk 0\nsv_consistency 1\nsv_pure 2\n",
	"l4d2/cfg/mapcycle.txt":     "c1m1_hotel\nc2m1_highway\nc3m1_plankcountry\n",
}

// overlayBench is the benchmark's host, its sources, and the two stacks
// of the same trees.
type overlayBench struct {
	*env
	n         int
	archives  *archiveServer
	steam     *steamapi.Server
	sourcemod []tarEntry
	archive   []byte
	items     []string
	// want is every file the three trees put below the game root, and
	// its SHA-256: what each stack must show the game.
	want                    map[string]string
	pathStack, fetchedStack benchStack
}

// benchStack is a Blueprint and its Overlays, topmost first.
type benchStack struct {
	blueprint string
	overlays  []*v1.Overlay
}

// roundResult is what one round measured.
type roundResult struct {
	// ready: apply → every Instance Ready and answering A2S.
	ready time.Duration
	// overlays: apply → the node reports every Overlay of the stack
	// Ready (fetched rounds).
	overlays time.Duration
	// took is the agent's "overlay stored" took, by source kind.
	took map[string]time.Duration
	// clean: the delete → the host clean.
	clean time.Duration
}

func newOverlayBench(t *testing.T, n int) *overlayBench {
	b := &overlayBench{n: n, archives: newArchiveServer(t), sourcemod: sourcemodTree(), items: []string{"2718281828", "3141592653", "1618033988"}}
	b.archive = tarGz(t, b.sourcemod...)
	url, sum := b.archives.serve(benchArchivePath, b.archive)
	var catalog steamapi.Catalog
	for i, id := range b.items {
		catalog.Items = append(catalog.Items, steamapi.Item{ID: id, Title: fmt.Sprintf("Campaign %d", i+1),
			TimeUpdated: 1700000000 + int64(i), Content: steamapi.VPK(id, benchItemBytes)})
	}
	b.steam = steamapi.New(catalog)
	steamSrv := httptest.NewServer(b.steam)
	t.Cleanup(steamSrv.Close)
	b.env = setupWith(t, nodeSettings{SteamAPIURL: steamSrv.URL, OverlayFileRoots: []string{"/var/lib/left4me/repos"}})
	if os.Getenv("L4M_AGENT_V") != "" {
		// The host's whole journal (the agent's, its fetchers', systemd's
		// about the mounts and games), kept for reading where the time
		// went (before the sandbox goes: cleanups run last first).
		t.Cleanup(func() {
			logs, _ := b.sb.Exec("journalctl", "--no-pager", "-o", "short-iso-precise")
			os.WriteFile("/tmp/agent-overlays.log", []byte(logs), 0o644)
		})
	}
	repo := newGitRemote(t, filepath.Join(b.sb.Left4meDir, "repos", "comp.git"))
	repo.commit("competitive configs", benchGitFiles)

	// The same trees as path Overlays, below overlays/ as an admin
	// would put them, and what the game must see of them.
	b.want = map[string]string{}
	put := func(overlay, rel string, body []byte) {
		p := filepath.Join(b.sb.Left4meDir, "overlays", overlay, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(body)
		b.want[rel] = hex.EncodeToString(h[:])
	}
	for _, e := range b.sourcemod {
		put("p-sourcemod", "left4dead2/"+e.Name, []byte(e.Body))
	}
	for name, body := range benchGitFiles {
		if rel, ok := strings.CutPrefix(name, "l4d2/"); ok {
			put("p-comp", "left4dead2/"+rel, []byte(body))
		}
	}
	for _, it := range catalog.Items {
		put("p-addons", v1.DefaultWorkshopInto+"/"+it.ID+".vpk", it.Content)
	}

	overlay := func(name string, src v1.OverlaySource) *v1.Overlay {
		return &v1.Overlay{ObjectMeta: meta_(name), Spec: v1.OverlaySpec{Source: src}}
	}
	b.pathStack = benchStack{blueprint: "on-path", overlays: []*v1.Overlay{
		overlay("p-addons", v1.OverlaySource{Path: "p-addons"}),
		overlay("p-comp", v1.OverlaySource{Path: "p-comp"}),
		overlay("p-sourcemod", v1.OverlaySource{Path: "p-sourcemod"}),
	}}
	b.fetchedStack = benchStack{blueprint: "fetched", overlays: []*v1.Overlay{
		overlay("addons", v1.OverlaySource{Workshop: &v1.WorkshopSource{Items: b.items}}),
		overlay("comp", v1.OverlaySource{Git: &v1.GitSource{URL: "file:///var/lib/left4me/repos/comp.git", Ref: "main", SubPath: "l4d2", Into: "left4dead2"}}),
		overlay("sourcemod", v1.OverlaySource{Archive: &v1.ArchiveSource{URL: url, SHA256: sum, Into: "left4dead2"}}),
	}}
	return b
}

// sourcemodTree is a SourceMod-like release as its archive lays it out
// (below left4dead2/): about 380 files, 15 MB, mostly binaries
// (incompressible) with the scripts, translations and gamedata as text.
func sourcemodTree() []tarEntry {
	var es []tarEntry
	// size varies each file's size deterministically within [base, base+spread).
	size := func(i, base, spread int) int { return base + (i*7919)%spread }
	bin := func(name string, n int) {
		es = append(es, tarEntry{Name: name, Body: string(steamapi.VPK(name, n))})
	}
	text := func(name string, n int) {
		var sb strings.Builder
		for i := 0; sb.Len() < n; i++ {
			fmt.Fprintf(&sb, "// %s:%d\npublic void Handler_%d(int client, const char[] arg) { PrintToChat(client, \"%%t\", \"phrase_%d\", arg); }\n", name, i, i, i)
		}
		es = append(es, tarEntry{Name: name, Body: sb.String()[:n]})
	}
	bin("addons/metamod/bin/server.so", 900_000)
	bin("addons/metamod/bin/metamod.2.l4d2.so", 600_000)
	text("addons/metamod.vdf", 120)
	text("addons/metamod/metaplugins.ini", 400)
	for i, name := range []string{"sourcemod.2.l4d2", "sourcemod.logic", "sourcepawn.jit.x86", "sourcemod_mm", "dbi.sqlite.ext", "bintools.ext"} {
		bin("addons/sourcemod/bin/"+name+".so", size(i, 400_000, 400_000))
	}
	for i := range 24 {
		bin(fmt.Sprintf("addons/sourcemod/extensions/ext%02d.ext.so", i), size(i, 100_000, 200_000))
	}
	for i := range 80 {
		bin(fmt.Sprintf("addons/sourcemod/plugins/plugin%02d.smx", i), size(i, 8_000, 40_000))
	}
	for i := range 110 {
		text(fmt.Sprintf("addons/sourcemod/scripting/plugin%02d.sp", i), size(i, 3_000, 25_000))
	}
	for i := range 60 {
		text(fmt.Sprintf("addons/sourcemod/scripting/include/inc%02d.inc", i), size(i, 2_000, 15_000))
	}
	for i := range 50 {
		text(fmt.Sprintf("addons/sourcemod/translations/plugin%02d.phrases.txt", i), size(i, 1_000, 12_000))
	}
	for i := range 40 {
		text(fmt.Sprintf("addons/sourcemod/gamedata/game%02d.txt", i), size(i, 1_000, 9_000))
	}
	for i := range 15 {
		text(fmt.Sprintf("addons/sourcemod/configs/config%02d.cfg", i), size(i, 200, 2_000))
	}
	text("cfg/sourcemod/sourcemod.cfg", 3_000)
	return es
}

func treeBytes(es []tarEntry) int {
	total := 0
	for _, e := range es {
		total += len(e.Body)
	}
	return total
}

// round applies the stack with n Instances, times them to Ready, checks
// what each game sees and how often each source was downloaded, then
// deletes everything and waits for the host to be clean.
func (b *overlayBench) round(s benchStack, fetched bool) roundResult {
	b.t.Helper()
	if ok, why := b.hostClean(); !ok {
		b.t.Fatalf("the host is not clean before a round: %s", why)
	}
	cursor := b.journalCursor()
	hits, downloads := b.archives.requests(benchArchivePath), b.steam.Stats().Downloads
	names := names("bench", b.n)
	var r roundResult

	began := time.Now()
	objs := []v1.Object{}
	for _, ov := range s.overlays {
		objs = append(objs, ov.DeepCopy())
	}
	var stack []string
	for _, ov := range s.overlays {
		stack = append(stack, ov.Name)
	}
	objs = append(objs, &v1.Blueprint{ObjectMeta: meta_(s.blueprint), Spec: v1.BlueprintSpec{Overlays: stack,
		Game:    v1.GameSpec{Map: "c1m1_hotel", MaxPlayers: 8},
		Rollout: v1.RolloutSpec{Policy: v1.RolloutWhenEmpty, MaxUnavailable: int32(b.n)}}})
	for _, n := range names {
		objs = append(objs, &v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: s.blueprint}, NodeName: b.node}})
	}
	b.createConcurrently(objs)
	b.until(fmt.Sprintf("%d Instances Ready on %s", b.n, s.blueprint), 10*time.Minute, func() (bool, string) {
		if fetched && r.overlays == 0 {
			if ok, _ := b.overlaysReadyOnNode(stack); ok {
				r.overlays = time.Since(began)
			}
		}
		return b.allAnswering(names)
	})
	r.ready = time.Since(began)
	if fetched && r.overlays == 0 {
		r.overlays = r.ready // Ready on the node in the poll that saw the games Ready
	}

	b.sameTrees(names[0])
	r.took = b.storedSince(cursor)
	b.downloadsOnce(fetched, hits, downloads, r.took)

	began = time.Now()
	b.deleteAll(s, names)
	b.until("the host clean after the round", 5*time.Minute, b.hostClean)
	r.clean = time.Since(began)
	return r
}

// createConcurrently creates objs in order up to the first Instance, and
// the Instances 16 at a time: as fast as an admin's apply could.
func (b *overlayBench) createConcurrently(objs []v1.Object) {
	b.t.Helper()
	ctx := context.Background()
	create := func(o v1.Object) error {
		res, _ := resources.ByKind(strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1alpha1."))
		_, err := b.admin.Create(ctx, res, o, false)
		if err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
		return nil
	}
	i := 0
	for ; i < len(objs); i++ {
		if _, ok := objs[i].(*v1.Instance); ok {
			break
		}
		if err := create(objs[i]); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := concurrently(objs[i:], create); err != nil {
		b.t.Fatal(err)
	}
}

// concurrently runs f on each of objs, 16 at a time, and joins the
// errors.
func concurrently(objs []v1.Object, f func(v1.Object) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 16)
	for _, o := range objs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(o); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// overlaysReadyOnNode: the node reports each named Overlay Ready.
func (b *overlayBench) overlaysReadyOnNode(stack []string) (bool, string) {
	obj, err := b.admin.Get(context.Background(), resources.Nodes, "", b.node)
	if err != nil {
		return false, err.Error()
	}
	for _, name := range stack {
		no := obj.(*v1.Node).Status.NodeOverlayFor("default", name)
		if no == nil || no.Phase != v1.OverlayPhaseReady {
			return false, fmt.Sprintf("Overlay %s on the node: %+v", name, no)
		}
	}
	return true, ""
}

// allAnswering: every named Instance is Ready, and answers A2S from
// outside the sandbox at the port its status gives.
func (b *overlayBench) allAnswering(names []string) (bool, string) {
	all, err := b.instances()
	if err != nil {
		return false, err.Error()
	}
	byName := map[string]*v1.Instance{}
	for _, in := range all {
		byName[in.Name] = in
	}
	for _, n := range names {
		in, ok := byName[n]
		if !ok {
			return false, n + " not created yet"
		}
		if !ready(in) {
			return false, n + ": " + conditionSummary(in)
		}
	}
	for _, n := range names {
		if _, err := queryAt("127.0.0.1", byName[n].Status.Port); err != nil {
			return false, fmt.Sprintf("%s: A2S at port %d: %v", n, byName[n].Status.Port, err)
		}
	}
	return true, ""
}

func (b *overlayBench) instances() ([]*v1.Instance, error) {
	list, err := b.admin.List(context.Background(), instances, "default", client.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Instances: %w", err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, fmt.Errorf("list Instances: %w", err)
	}
	var out []*v1.Instance
	for _, o := range items {
		if in, ok := o.(*v1.Instance); ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// sameTrees: the game's merged tree holds every file of the three trees,
// byte for byte, whichever stack it runs on.
func (b *overlayBench) sameTrees(instance string) {
	b.t.Helper()
	rels := make([]string, 0, len(b.want))
	for rel := range b.want {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	out, err := b.sb.Exec(append([]string{"env", "-C", gameTree(b.t, b.sb, instance), "sha256sum", "--"}, rels...)...)
	if err != nil {
		b.t.Fatalf("%s's merged tree: %v\n%s", instance, err, out)
	}
	got := map[string]string{}
	for line := range strings.Lines(out) {
		if sum, rel, ok := strings.Cut(strings.TrimSpace(line), "  "); ok {
			got[rel] = sum
		}
	}
	for _, rel := range rels {
		if got[rel] != b.want[rel] {
			b.t.Fatalf("%s's merged tree: %s has sha256 %q, want %s", instance, rel, got[rel], b.want[rel])
		}
	}
}

// journalCursor is the agent journal's cursor now: storedSince reads
// what the agent logged after it.
func (b *overlayBench) journalCursor() string {
	b.t.Helper()
	out := b.sb.MustExec(b.t, "journalctl", "-u", "l4m-node", "-n", "1", "--show-cursor", "--no-pager", "-o", "cat")
	for line := range strings.Lines(out) {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "-- cursor: "); ok {
			return c
		}
	}
	b.t.Fatalf("no cursor in the agent's journal:\n%s", out)
	return ""
}

// storedSince is the took of each "overlay stored" line the agent logged
// after cursor, by source kind; a kind stored twice fails the test (each
// source is fetched once a round).
func (b *overlayBench) storedSince(cursor string) map[string]time.Duration {
	b.t.Helper()
	out := b.sb.MustExec(b.t, "journalctl", "-u", "l4m-node", "--after-cursor", cursor, "--no-pager", "-o", "cat")
	took := map[string]time.Duration{}
	for line := range strings.Lines(out) {
		_, fields, ok := strings.Cut(line, "\toverlay stored\t")
		if !ok {
			continue
		}
		var f struct {
			Overlay string `json:"overlay"`
			Source  string `json:"source"`
			Took    string `json:"took"`
		}
		if err := json.Unmarshal([]byte(fields), &f); err != nil {
			b.t.Fatalf("the agent's %q line: %v", line, err)
		}
		d, err := time.ParseDuration(f.Took)
		if err != nil {
			b.t.Fatalf("the agent's %q line: took: %v", line, err)
		}
		if _, dup := took[f.Source]; dup {
			b.t.Fatalf("the %s source was stored twice in one round:\n%s", f.Source, out)
		}
		took[f.Source] = d
		b.t.Logf("agent: %s", strings.TrimSpace(line))
	}
	return took
}

// downloadsOnce: a fetched round downloaded the archive and each item
// once, and stored each of the three sources once; a path round fetched
// nothing.
func (b *overlayBench) downloadsOnce(fetched bool, hits int, downloads map[string]int, took map[string]time.Duration) {
	b.t.Helper()
	want, wantStored := 0, []string(nil)
	if fetched {
		want, wantStored = 1, []string{"archive", "git", "workshop"}
	}
	if got := b.archives.requests(benchArchivePath) - hits; got != want {
		b.t.Fatalf("the archive was requested %d times in the round, want %d", got, want)
	}
	now := b.steam.Stats().Downloads
	for _, id := range b.items {
		if got := now[id] - downloads[id]; got != want {
			b.t.Fatalf("Workshop item %s was downloaded %d times in the round, want %d", id, got, want)
		}
	}
	var stored []string
	for kind := range took {
		stored = append(stored, kind)
	}
	slices.Sort(stored)
	if !slices.Equal(stored, wantStored) {
		b.t.Fatalf("the agent stored %v in the round, want %v", stored, wantStored)
	}
}

// deleteAll deletes the Instances (16 at a time), waits until they are
// gone, then the Blueprint and the Overlays.
func (b *overlayBench) deleteAll(s benchStack, names []string) {
	b.t.Helper()
	ctx := context.Background()
	var objs []v1.Object
	for _, n := range names {
		objs = append(objs, &v1.Instance{ObjectMeta: meta_(n)})
	}
	if err := concurrently(objs, func(o v1.Object) error {
		if _, _, err := b.admin.Delete(ctx, instances, "default", o.GetName(), false); err != nil {
			return fmt.Errorf("delete Instance %s: %w", o.GetName(), err)
		}
		return nil
	}); err != nil {
		b.t.Fatal(err)
	}
	b.until("every Instance gone", 5*time.Minute, func() (bool, string) {
		all, err := b.instances()
		if err != nil {
			return false, err.Error()
		}
		return len(all) == 0, fmt.Sprintf("%d Instances left", len(all))
	})
	if _, _, err := b.admin.Delete(ctx, blueprints, "default", s.blueprint, false); err != nil {
		b.t.Fatalf("delete Blueprint %s: %v", s.blueprint, err)
	}
	for _, ov := range s.overlays {
		if _, _, err := b.admin.Delete(ctx, resources.Overlays, "default", ov.Name, false); err != nil {
			b.t.Fatalf("delete Overlay %s: %v", ov.Name, err)
		}
	}
}

// hostClean: no Instance in the API; on the host no game or fetcher
// unit, no mount below /var/lib/left4me/, nothing in runtime/ or
// instances/; the store holds no entry, no staging tree, and its index
// names nothing; the Node reports no Overlay.
func (b *overlayBench) hostClean() (bool, string) {
	if all, err := b.instances(); err != nil || len(all) > 0 {
		return false, fmt.Sprintf("%d Instances in the API (%v)", len(all), err)
	}
	units, _ := b.sb.Exec("systemctl", "list-units", "--all", "--no-legend", "--plain", "l4m-default.*", "l4m-fetch-*", "*left4me-runtime*")
	if strings.TrimSpace(units) != "" {
		return false, "units left:\n" + units
	}
	if mounts, _ := b.sb.Exec("cat", "/proc/self/mountinfo"); strings.Contains(mounts, "/var/lib/left4me/") {
		return false, "mounts left below /var/lib/left4me/"
	}
	for _, d := range []string{"runtime", "instances", "overlays/.store", "overlays/.store/.staging"} {
		des, err := os.ReadDir(filepath.Join(b.sb.Left4meDir, d))
		if err != nil && !os.IsNotExist(err) {
			return false, err.Error()
		}
		var left []string
		for _, de := range des {
			if de.Name() != ".staging" && de.Name() != "index.json" {
				left = append(left, de.Name())
			}
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("%s holds %v", d, left)
		}
	}
	data, err := os.ReadFile(filepath.Join(b.sb.Left4meDir, "overlays", ".store", "index.json"))
	if err != nil && !os.IsNotExist(err) {
		return false, err.Error()
	}
	var index struct {
		Overlays map[string]any `json:"overlays"`
		Sources  map[string]any `json:"sources"`
		Resolved map[string]any `json:"resolved"`
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &index); err != nil {
			return false, fmt.Sprintf("the store's index: %v", err)
		}
	}
	if len(index.Overlays)+len(index.Sources)+len(index.Resolved) > 0 {
		return false, "the store's index still names entries: " + string(data)
	}
	obj, err := b.admin.Get(context.Background(), resources.Nodes, "", b.node)
	if err != nil {
		return false, err.Error()
	}
	if ovs := obj.(*v1.Node).Status.Overlays; len(ovs) > 0 {
		return false, fmt.Sprintf("the Node reports Overlays: %+v", ovs)
	}
	return true, ""
}
