package fetcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/left4me/left4me/node/extract"
)

// gitFixture is a repository the tests build with the git CLI, and the
// directory it is served from (a file root, and GIT_PROJECT_ROOT).
type gitFixture struct {
	root string // holds repo.git (bare) and work (its checkout)
	bare string
	work string
	// ids are the commits by name: first (tagged v1.0.0 annotated and
	// light lightweight),
	// second (no ref names it), third (main's tip, tagged "both"), dev
	// (also branch "both"), escape, submodule, dotgit, dotdot, big.
	ids map[string]string
}

var (
	fixtureOnce sync.Once
	fixture     *gitFixture
	fixtureErr  error
)

// requireGit fails in CI (which installs git) and skips elsewhere when
// the git CLI or git-http-backend is missing; it installs nothing.
func requireGit(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing: .ci/run installs git", what)
		}
		t.Skipf("%s is not installed (apt-get install git)", what)
	}
	if _, err := exec.LookPath("git"); err != nil {
		missing("git")
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		missing("git --exec-path")
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		missing(backend)
	}
	return backend
}

// gitEnv keeps the user's and the system's git config out of the tests.
func gitEnv(home string) []string {
	return append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=left4me", "GIT_AUTHOR_EMAIL=test@left4me.invalid", "GIT_COMMITTER_NAME=left4me",
		"GIT_COMMITTER_EMAIL=test@left4me.invalid", "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
}

// repoFixture builds the repository once for the package's tests (they
// only read it); TestMain removes it.
func repoFixture(t *testing.T) *gitFixture {
	t.Helper()
	requireGit(t)
	fixtureOnce.Do(func() { fixture, fixtureErr = buildFixture() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func buildFixture() (*gitFixture, error) {
	root, err := os.MkdirTemp("", "l4m-git-fixture-")
	if err != nil {
		return nil, err
	}
	fx := &gitFixture{root: root, bare: filepath.Join(root, "repo.git"), work: filepath.Join(root, "work"), ids: map[string]string{}}
	env := gitEnv(root)
	var failed error
	git := func(args ...string) string {
		if failed != nil {
			return ""
		}
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = fx.work, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			failed = fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, body string, mode os.FileMode) {
		p := filepath.Join(fx.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil && failed == nil {
			failed = err
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil && failed == nil {
			failed = err
		}
		os.Chmod(p, mode)
	}
	link := func(name, target string) {
		if err := os.Symlink(target, filepath.Join(fx.work, name)); err != nil && failed == nil {
			failed = err
		}
	}
	commit := func(name, msg string) {
		git("add", "-A")
		git("commit", "-q", "-m", msg)
		fx.ids[name] = git("rev-parse", "HEAD")
	}
	// commitTree commits a tree git mktree builds from lines, on a branch
	// of its own: entries a checkout could not hold.
	commitTree := func(name string, lines ...string) {
		cmd := exec.Command("git", "mktree")
		cmd.Dir, cmd.Env = fx.work, env
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		out, err := cmd.Output()
		if err != nil && failed == nil {
			failed = fmt.Errorf("git mktree: %v", err)
		}
		id := git("commit-tree", "-m", name, strings.TrimSpace(string(out)))
		git("update-ref", "refs/heads/"+name, id)
		fx.ids[name] = id
	}
	if err := os.Mkdir(fx.work, 0o755); err != nil {
		return nil, err
	}
	git("init", "-q", "-b", "main", ".")
	write("README.md", "a config repository\n", 0o644)
	write("addons/sourcemod/plugins/a.smx", "FFSP plugin a", 0o644)
	link("addons/sourcemod/plugins/current.smx", "a.smx")
	write("cfg/server.cfg", "hostname first\n", 0o644)
	write("bin/start.sh", "#!/bin/sh\nexec srcds_run\n", 0o755)
	commit("first", "first")
	git("tag", "-a", "-m", "release 1.0.0", "v1.0.0")
	git("tag", "light")
	write("cfg/server.cfg", "hostname second\n", 0o644)
	commit("second", "second")
	write("cfg/extra.cfg", "sv_cheats 0\n", 0o644)
	commit("third", "third")
	git("tag", "-a", "-m", "a tag named like a branch", "both")

	git("checkout", "-q", "-b", "dev", fx.ids["first"])
	write("cfg/server.cfg", "hostname dev\n", 0o644)
	commit("dev", "dev")
	git("branch", "both") // a branch named like the tag: the tag wins

	git("checkout", "-q", "-b", "escape", fx.ids["first"])
	link("cfg/evil", "../../../etc/passwd")
	commit("escape", "a symlink out of the tree")

	git("checkout", "-q", "-b", "submodule", fx.ids["first"])
	git("update-index", "--add", "--cacheinfo", "160000,"+fx.ids["first"]+",lib/sm")
	git("commit", "-q", "-m", "a submodule")
	fx.ids["submodule"] = git("rev-parse", "HEAD")

	git("checkout", "-q", "-b", "big", fx.ids["first"])
	noise := make([]byte, 512<<10) // incompressible: the pack is as large
	rand.Read(noise)
	write("maps/big.vpk", string(noise), 0o644)
	commit("big", "a large file")

	git("checkout", "-q", "main")
	blob := git("hash-object", "-w", "README.md")
	commitTree("dotgit", "100644 blob "+blob+"\tREADME.md", "100644 blob "+blob+"\t.GIT")
	commitTree("dotdot", "100644 blob "+blob+"\t..")
	if failed != nil {
		return nil, failed
	}
	cmd := exec.Command("git", "clone", "-q", "--bare", fx.work, fx.bare)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git clone --bare: %v: %s", err, out)
	}
	return fx, nil
}

// gitServer serves fx.root over smart HTTP (git http-backend through
// net/http/cgi) on loopback, over https with tls; config is git config
// for the server (key=value).
func gitServer(t *testing.T, fx *gitFixture, tls bool, config ...string) *server {
	t.Helper()
	backend := requireGit(t)
	env := []string{"GIT_PROJECT_ROOT=" + fx.root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + fx.root,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(config))}
	for i, kv := range config {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, k), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, v))
	}
	// The refusals the tests make cut connections: not noise for the log.
	h := &cgi.Handler{Path: backend, Root: "/", Env: env, Logger: log.New(io.Discard, "", 0), Stderr: io.Discard}
	return newServer(t, tls, func(_ *server, w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) })
}

// gitSources are the two ways the tests reach the fixture: file:// below
// a file root, and https through git http-backend.
func gitSources(t *testing.T, fx *gitFixture) map[string]GitSpec {
	s := gitServer(t, fx, true)
	return map[string]GitSpec{
		"file":  {URL: "file://" + fx.bare, Download: Limits{FileRoots: []string{fx.root}}},
		"https": {URL: s.URL + "/repo.git", Download: Limits{CAPEM: s.caPEM()}},
	}
}

func fetchGitT(t *testing.T, spec GitSpec) (string, Result, error) {
	t.Helper()
	staging := t.TempDir()
	res, err := FetchGit(context.Background(), spec, staging)
	return staging, res, err
}

// mainTree is the fixture's main branch, into left4dead2.
var mainTree = []string{
	"left4dead2/ dir",
	"left4dead2/README.md 0644",
	"left4dead2/addons/ dir",
	"left4dead2/addons/sourcemod/ dir",
	"left4dead2/addons/sourcemod/plugins/ dir",
	"left4dead2/addons/sourcemod/plugins/a.smx 0644",
	"left4dead2/addons/sourcemod/plugins/current.smx -> a.smx",
	"left4dead2/bin/ dir",
	"left4dead2/bin/start.sh 0755",
	"left4dead2/cfg/ dir",
	"left4dead2/cfg/extra.cfg 0644",
	"left4dead2/cfg/server.cfg 0644",
}

func TestGitFetchesRefs(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			spec := base
			spec.Ref, spec.Into = "main", "left4dead2"
			staging, res, err := fetchGitT(t, spec)
			if err != nil {
				t.Fatal(err)
			}
			tree := filepath.Join(staging, TreeName)
			if got := listing(t, tree); !slices.Equal(got, mainTree) {
				t.Errorf("tree:\n%v\nwant:\n%v", got, mainTree)
			}
			if res.Commit != fx.ids["third"] {
				t.Errorf("commit %s, want main's %s", res.Commit, fx.ids["third"])
			}
			if got := readFile(t, filepath.Join(tree, "left4dead2/bin/start.sh")); got != "#!/bin/sh\nexec srcds_run\n" {
				t.Errorf("start.sh holds %q", got)
			}
			if res.Stats.Files != 5 || res.Stats.Symlinks != 1 {
				t.Errorf("stats %+v", res.Stats)
			}
			// Only the tree is left: the fetched objects are gone.
			if got := names(t, staging); !slices.Equal(got, []string{TreeName}) {
				t.Errorf("staging holds %v, want only the tree", got)
			}

			for _, c := range []struct{ ref, commit, cfg string }{
				{"v1.0.0", "first", "hostname first\n"},           // annotated: peeled
				{"light", "first", "hostname first\n"},            // lightweight
				{"refs/tags/v1.0.0", "first", "hostname first\n"}, // a full name
				{"tags/light", "first", "hostname first\n"},       // refs/<name>
				{"dev", "dev", "hostname dev\n"},                  // a branch
				{"refs/heads/dev", "dev", "hostname dev\n"},       // a full branch name
				{"both", "third", "hostname second\n"},            // tag and branch: the tag wins
				{"refs/heads/both", "dev", "hostname dev\n"},      // unless the branch is named
				{"HEAD", "third", "hostname second\n"},            // the default branch
				{fx.ids["third"], "third", "hostname second\n"},   // a tip's commit id
				{fx.ids["first"], "first", "hostname first\n"},    // a tag's commit id
				{fx.ids["second"], "second", "hostname second\n"}, // a commit no ref names
			} {
				spec := base
				spec.Ref = c.ref
				staging, res, err := fetchGitT(t, spec)
				if err != nil {
					t.Errorf("ref %s: %v", c.ref, err)
					continue
				}
				if res.Commit != fx.ids[c.commit] {
					t.Errorf("ref %s: commit %s, want %s's %s", c.ref, res.Commit, c.commit, fx.ids[c.commit])
				}
				if got := readFile(t, filepath.Join(staging, TreeName, "cfg/server.cfg")); got != c.cfg {
					t.Errorf("ref %s: cfg/server.cfg holds %q, want %q", c.ref, got, c.cfg)
				}
			}
		})
	}
}

func removeGitFixture() {
	if fixture != nil {
		os.RemoveAll(fixture.root)
	}
}

func TestGitResolveOnly(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			for ref, want := range map[string]string{"main": "third", "v1.0.0": "first", "both": "third", "dev": "dev"} {
				spec := base
				spec.Ref, spec.ResolveOnly = ref, true
				staging, res, err := fetchGitT(t, spec)
				if err != nil {
					t.Fatalf("ref %s: %v", ref, err)
				}
				if res.Commit != fx.ids[want] {
					t.Errorf("ref %s resolved to %s, want %s's %s", ref, res.Commit, want, fx.ids[want])
				}
				if got := names(t, staging); len(got) != 0 {
					t.Errorf("ref %s: ResolveOnly left %v in staging", ref, got)
				}
			}
		})
	}
	// A commit id is what it says, whatever the URL: nothing is asked.
	id := strings.Repeat("ab", 20)
	_, res, err := fetchGitT(t, GitSpec{URL: "http://127.0.0.1:1/nothing.git", Ref: id, ResolveOnly: true})
	if err != nil || res.Commit != id {
		t.Errorf("commit id resolved to %q, %v", res.Commit, err)
	}
}

func TestGitRefNotFound(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			for _, resolveOnly := range []bool{false, true} {
				spec := base
				spec.Ref, spec.ResolveOnly = "v9.9.9", resolveOnly
				_, _, err := fetchGitT(t, spec)
				wantReason(t, err, RefNotFound, `ref "v9.9.9"`, spec.URL)
			}
			spec := base
			spec.Ref = strings.Repeat("0123456789", 4)
			_, _, err := fetchGitT(t, spec)
			wantReason(t, err, RefNotFound, "commit "+spec.Ref+" is not in the repository", spec.URL)
		})
	}
}

func TestGitSubPathInto(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			spec := base
			spec.Ref, spec.SubPath, spec.Into = "main", "addons/sourcemod", "left4dead2/addons/sourcemod"
			staging, _, err := fetchGitT(t, spec)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				"left4dead2/ dir",
				"left4dead2/addons/ dir",
				"left4dead2/addons/sourcemod/ dir",
				"left4dead2/addons/sourcemod/plugins/ dir",
				"left4dead2/addons/sourcemod/plugins/a.smx 0644",
				"left4dead2/addons/sourcemod/plugins/current.smx -> a.smx",
			}
			if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, want) {
				t.Errorf("tree:\n%v\nwant:\n%v", got, want)
			}

			for _, sub := range []string{"maps", "README.md", "addons/sourcemod/plugins/current.smx"} {
				spec.SubPath = sub
				_, _, err = fetchGitT(t, spec)
				wantReason(t, err, InvalidSpec, fmt.Sprintf("subPath %q is not a directory in commit %s", sub, fx.ids["third"]))
			}
		})
	}
}

func TestGitUnsafeTrees(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			for _, c := range []struct{ ref, entry, says string }{
				{"escape", "cfg/evil", "leaves the tree"},
				{"dotgit", ".GIT", "git takes for its own directory"},
				{"dotdot", "..", `a tree entry named ".."`},
			} {
				spec := base
				spec.Ref = c.ref
				_, _, err := fetchGitT(t, spec)
				e := wantReason(t, err, UnsafeEntry, fmt.Sprintf("entry %q", c.entry), c.says)
				if e.Entry != c.entry || !errors.Is(err, extract.ErrUnsafe) {
					t.Errorf("ref %s: entry %q, errors.Is(ErrUnsafe) %v", c.ref, e.Entry, errors.Is(err, extract.ErrUnsafe))
				}
			}
		})
	}
}

func TestGitSubmoduleSkipped(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			spec := base
			spec.Ref = "submodule"
			staging, res, err := fetchGitT(t, spec)
			if err != nil {
				t.Fatal(err)
			}
			tree := filepath.Join(staging, TreeName)
			if got := listing(t, filepath.Join(tree, "lib")); len(got) != 0 {
				t.Errorf("lib/ holds %v: the submodule is not content", got)
			}
			if res.Stats.Skipped != 1 || res.Commit != fx.ids["submodule"] {
				t.Errorf("stats %+v, commit %s", res.Stats, res.Commit)
			}
		})
	}
}

func TestGitEntryLimits(t *testing.T) {
	fx := repoFixture(t)
	for kind, base := range gitSources(t, fx) {
		t.Run(kind, func(t *testing.T) {
			for _, c := range []struct {
				limits extract.Limits
				says   string
			}{
				{extract.Limits{MaxEntries: 4}, "more than MaxEntries (4)"},
				{extract.Limits{MaxEntryBytes: 16}, "more than MaxEntryBytes (16 bytes)"},
				{extract.Limits{MaxTotalBytes: 40}, "more than MaxTotalBytes (40 bytes)"},
				{extract.Limits{MaxPathLength: 20}, "more than MaxPathLength (20)"},
			} {
				spec := base
				spec.Ref, spec.Extract = "main", c.limits
				_, _, err := fetchGitT(t, spec)
				e := wantReason(t, err, ArchiveTooLarge, c.says)
				if e.Entry == "" || !errors.Is(err, extract.ErrLimit) {
					t.Errorf("limits %+v: entry %q, errors.Is(ErrLimit) %v", c.limits, e.Entry, errors.Is(err, extract.ErrLimit))
				}
			}
		})
	}
}

func TestGitPackOverMaxBytes(t *testing.T) {
	fx := repoFixture(t)
	s := gitServer(t, fx, true)
	spec := GitSpec{URL: s.URL + "/repo.git", Ref: "big", Download: Limits{CAPEM: s.caPEM(), MaxBytes: 128 << 10}}
	staging, _, err := fetchGitT(t, spec)
	wantReason(t, err, TooLarge, "more than MaxBytes (128 KiB)")
	if got := names(t, staging); len(got) != 0 {
		t.Errorf("staging holds %v after the refusal, want nothing", got)
	}
	// The same limit lets the small branches through.
	spec.Ref = "main"
	if _, _, err := fetchGitT(t, spec); err != nil {
		t.Errorf("main within 128 KiB: %v", err)
	}
}

// TestGitNonTipCommit: a commit no ref names is fetched alone where the
// server allows it, else with every branch and tag (which the log says).
func TestGitNonTipCommit(t *testing.T) {
	fx := repoFixture(t)
	for _, c := range []struct {
		name     string
		config   []string
		fullPack bool
	}{
		{"server refuses", nil, true},
		{"server allows", []string{"uploadpack.allowReachableSHA1InWant=true"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := gitServer(t, fx, false, c.config...)
			var mu sync.Mutex
			var logs []string
			log := funcr.New(func(prefix, args string) {
				mu.Lock()
				logs = append(logs, args)
				mu.Unlock()
			}, funcr.Options{})
			spec := GitSpec{URL: s.URL + "/repo.git", Ref: fx.ids["second"], Download: Limits{Log: log}}
			staging, res, err := fetchGitT(t, spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(staging, TreeName, "cfg/server.cfg")); res.Commit != fx.ids["second"] || got != "hostname second\n" {
				t.Errorf("commit %s, cfg %q", res.Commit, got)
			}
			mu.Lock()
			full := slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "fetching every branch and tag") })
			mu.Unlock()
			if full != c.fullPack {
				t.Errorf("fetched every branch and tag: %v, want %v (logs %q)", full, c.fullPack, logs)
			}
		})
	}
}

func TestGitRefusesSpecs(t *testing.T) {
	fx := repoFixture(t)
	roots := Limits{FileRoots: []string{fx.root}}
	outside := t.TempDir()
	rootWithLink := t.TempDir()
	if err := os.Symlink(fx.root, filepath.Join(rootWithLink, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		spec   GitSpec
		reason string
		says   string
	}{
		{"http with a branch", GitSpec{URL: "http://127.0.0.1:1/repo.git", Ref: "main"}, InvalidSpec, "an http URL takes only a full commit id"},
		{"ssh", GitSpec{URL: "ssh://example.invalid/repo.git", Ref: "main"}, InvalidSpec, `scheme "ssh"`},
		{"credentials", GitSpec{URL: "https://me:secret@example.invalid/repo.git", Ref: "main"}, InvalidSpec, "credentials"},
		{"fragment", GitSpec{URL: "https://example.invalid/repo.git#main", Ref: "main"}, InvalidSpec, "fragment"},
		{"no ref", GitSpec{URL: "https://example.invalid/repo.git"}, InvalidSpec, "want a commit id, tag or branch"},
		{"option-like ref", GitSpec{URL: "https://example.invalid/repo.git", Ref: "--upload-pack=x"}, InvalidSpec, "must not start with '-'"},
		{"bad subPath", GitSpec{URL: "https://example.invalid/repo.git", Ref: "main", SubPath: "../x"}, InvalidSpec, "subPath"},
		{".git subPath", GitSpec{URL: "https://example.invalid/repo.git", Ref: "main", SubPath: "a/.Git"}, InvalidSpec, "no .git"},
		{"bad into", GitSpec{URL: "https://example.invalid/repo.git", Ref: "main", Into: "/abs"}, InvalidSpec, "into"},
		{"sha-256 id", GitSpec{URL: "https://example.invalid/repo.git", Ref: strings.Repeat("ab", 32)}, GitFailed, "SHA-1 repositories only"},
		{"file without roots", GitSpec{URL: "file://" + fx.bare, Ref: "main"}, FileURLRefused, "no overlay file roots"},
		{"file outside the roots", GitSpec{URL: "file://" + fx.bare, Ref: "main", Download: Limits{FileRoots: []string{outside}}}, FileURLRefused, "not below this node's overlay file roots"},
		{"file through a link out of the root", GitSpec{URL: "file://" + rootWithLink + "/elsewhere/repo.git", Ref: "main", Download: Limits{FileRoots: []string{rootWithLink}}},
			FileURLRefused, "leads out of the file root"},
		{"file not a repository", GitSpec{URL: "file://" + fx.work + "/cfg", Ref: "main", Download: roots}, GitFailed, "not a git repository"},
		{"file missing", GitSpec{URL: "file://" + fx.root + "/nothing.git", Ref: "main", Download: roots}, GitFailed, "no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := fetchGitT(t, c.spec)
			wantReason(t, err, c.reason, c.says)
		})
	}
}

// TestGitFileRepositories: a checkout's directory is read through its
// .git, never its worktree; a link inside the file root is followed.
func TestGitFileRepositories(t *testing.T) {
	fx := repoFixture(t)
	staging, res, err := fetchGitT(t, GitSpec{URL: "file://" + fx.work, Ref: "main", Into: "left4dead2", Download: Limits{FileRoots: []string{fx.root}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, mainTree) || res.Commit != fx.ids["third"] {
		t.Errorf("commit %s, tree:\n%v\nwant:\n%v", res.Commit, got, mainTree)
	}

	// A symlink that stays inside the file root is followed (a mirror's
	// "latest").
	mirror := t.TempDir()
	clone := exec.Command("git", "clone", "-q", "--bare", fx.bare, filepath.Join(mirror, "v1.git"))
	clone.Env = gitEnv(mirror)
	if out, err := clone.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	if err := os.Symlink("v1.git", filepath.Join(mirror, "latest.git")); err != nil {
		t.Fatal(err)
	}
	_, res, err = fetchGitT(t, GitSpec{URL: "file://" + mirror + "/latest.git", Ref: "dev", Download: Limits{FileRoots: []string{mirror}}})
	if err != nil || res.Commit != fx.ids["dev"] {
		t.Errorf("through a link inside the root: %s, %v", res.Commit, err)
	}
}

func TestGitServerFailures(t *testing.T) {
	fx := repoFixture(t)
	git := gitServer(t, fx, true)
	web := newServer(t, true, func(_ *server, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>not a repository</html>"))
	})
	failing := newServer(t, true, func(_ *server, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	})
	plain := gitServer(t, fx, false)
	downgrade := newServer(t, true, func(_ *server, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusFound)
	})
	for _, c := range []struct {
		name   string
		s      *server
		path   string
		reason string
		says   string
	}{
		{"no repository there", git, "/nothing.git", GitFailed, "no repository there"},
		{"a web page", web, "/repo.git", GitFailed, "listing the repository's refs"},
		{"503", failing, "/repo.git", ServerUnavailable, "503"},
		{"a redirect from https to http", downgrade, "/repo.git", RedirectRefused, `changes scheme from "https" to "http"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := fetchGitT(t, GitSpec{URL: c.s.URL + c.path, Ref: "main", Download: Limits{CAPEM: c.s.caPEM()}})
			wantReason(t, err, c.reason, c.says, c.s.URL+c.path)
		})
	}
	// A certificate the node does not trust.
	_, _, err := fetchGitT(t, GitSpec{URL: git.URL + "/repo.git", Ref: "main"})
	wantReason(t, err, DownloadFailed, "TLS")
}

func TestGitTimeout(t *testing.T) {
	requireGit(t)
	stuck := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the client gives up
	})
	id := strings.Repeat("ab", 20)
	start := time.Now()
	_, _, err := fetchGitT(t, GitSpec{URL: stuck.URL + "/repo.git", Ref: id, Download: Limits{Timeout: 200 * time.Millisecond}})
	wantReason(t, err, TimedOut, "within 200ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = FetchGit(ctx, GitSpec{URL: stuck.URL + "/repo.git", Ref: id}, t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// TestGitThroughRunCommand: the fetcher process's command runs a git job
// and its result line carries the commit, or the error's reason.
func TestGitThroughRunCommand(t *testing.T) {
	fx := repoFixture(t)
	run := func(spec GitSpec) (Result, *Error, string) {
		staging := t.TempDir()
		js, err := json.Marshal(Job{Git: &spec})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		RunCommand(context.Background(), bytes.NewReader(js), staging, &out, logr.Discard())
		res, ferr, ok := parseResult(out.String(), spec.URL)
		if !ok {
			t.Fatalf("no result line in %q", out.String())
		}
		return res, ferr, staging
	}
	spec := GitSpec{URL: "file://" + fx.bare, Ref: "v1.0.0", Into: "left4dead2", Download: Limits{FileRoots: []string{fx.root}}}
	res, ferr, staging := run(spec)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if res.Commit != fx.ids["first"] || res.Stats.Files != 4 {
		t.Errorf("result %+v", res)
	}
	if got := readFile(t, filepath.Join(staging, TreeName, "left4dead2/cfg/server.cfg")); got != "hostname first\n" {
		t.Errorf("server.cfg %q", got)
	}
	spec.Ref = "escape"
	_, ferr, _ = run(spec)
	if ferr == nil || ferr.Reason != UnsafeEntry || ferr.Entry != "cfg/evil" || !errors.Is(ferr, extract.ErrUnsafe) {
		t.Errorf("escape: %+v", ferr)
	}
	spec.Ref = "v9"
	_, ferr, _ = run(spec)
	if ferr == nil || ferr.Reason != RefNotFound {
		t.Errorf("v9: %+v", ferr)
	}
}

// TestRunnerFetchesGit: through the Runner, as the fetcher account.
func TestRunnerFetchesGit(t *testing.T) {
	r, _ := newRunner(t, Config{})
	fx := repoFixture(t)
	staging := stagingDir(t)
	spec := GitSpec{URL: "file://" + fx.bare, Ref: "main", Into: "left4dead2", Download: Limits{FileRoots: []string{fx.root}}}
	res, err := r.Fetch(context.Background(), Job{Git: &spec}, staging)
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, mainTree) || res.Commit != fx.ids["third"] {
		t.Errorf("commit %s, tree:\n%v", res.Commit, got)
	}
	// Refused before a fetcher runs.
	bad := GitSpec{URL: "http://127.0.0.1:1/repo.git", Ref: "main"}
	_, err = r.Fetch(context.Background(), Job{Git: &bad}, stagingDir(t))
	wantReason(t, err, InvalidSpec, "only a full commit id")
}

func TestResolveRef(t *testing.T) {
	h := func(c byte) plumbing.Hash { return plumbing.NewHash(strings.Repeat(string(c), 40)) }
	refs := refList{
		hashes: map[string]plumbing.Hash{
			"HEAD": h('1'), "refs/heads/main": h('1'), "refs/heads/v2": h('2'), "refs/tags/v2": h('3'),
			"refs/tags/v1":           h('4'), // annotated: peeled below
			"refs/heads/refs/tags/x": h('6'),
		},
		peeled: map[string]plumbing.Hash{"refs/tags/v1": h('5')},
	}
	for _, c := range []struct {
		ref  string
		want target
		ok   bool
	}{
		{"main", target{name: "refs/heads/main", hash: h('1'), tip: true}, true},
		{"HEAD", target{name: "HEAD", hash: h('1'), tip: true}, true},
		{"v2", target{name: "refs/tags/v2", hash: h('3'), tip: true}, true}, // the tag, not the branch
		{"heads/v2", target{name: "refs/heads/v2", hash: h('2'), tip: true}, true},
		{"refs/heads/v2", target{name: "refs/heads/v2", hash: h('2'), tip: true}, true},
		{"v1", target{name: "refs/tags/v1", hash: h('5'), tip: true}, true}, // peeled
		{"refs/tags/x", target{name: "refs/heads/refs/tags/x", hash: h('6'), tip: true}, true},
		{strings.Repeat("5", 40), target{hash: h('5'), tip: true}, true}, // a peeled tag's commit is a tip
		{strings.Repeat("2", 40), target{hash: h('2'), tip: true}, true},
		{strings.Repeat("9", 40), target{hash: h('9')}, true}, // maybe in the history
		{"v3", target{}, false},
		{"tags/main", target{}, false},
	} {
		got, ok := resolveRef(c.ref, refs)
		if got != c.want || ok != c.ok {
			t.Errorf("resolveRef(%q) = %+v, %v; want %+v, %v", c.ref, got, ok, c.want, c.ok)
		}
	}
	if got := refs.tips(); len(got) != 5 {
		t.Errorf("tips %v: want the 5 distinct objects of HEAD, branches and tags", got)
	}
}

func TestCheckTreeName(t *testing.T) {
	for _, name := range []string{"README.md", ".gitignore", ".gitmodules", "git", "a.git", ".github"} {
		if err := checkTreeName(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".git", ".GIT", ".Git", "a/b", "a\x00b"} {
		if err := checkTreeName(name); !errors.Is(err, extract.ErrUnsafe) {
			t.Errorf("%q: %v, want ErrUnsafe", name, err)
		}
	}
}
