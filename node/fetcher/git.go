package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/left4me/left4me/node/extract"
)

// RepoName is, below a staging directory, the fetched objects of a remote
// git repository while its tree is written (removed after).
const RepoName = "repo"

// maxRefLength is the longest ref name accepted (the API's
// MaxGitRefLength).
const maxRefLength = 255

// maxTagChain bounds the tags peeled to reach a commit (a tag of a tag of
// ...): git itself stops nowhere, a hostile repository could chain
// forever.
const maxTagChain = 16

// FetchGit writes a git source's tree at its resolved commit into
// staging/tree, which it makes (mode 0755; it must not exist yet), and
// returns the commit (see GitSpec). staging must exist, and is where a
// remote repository's objects are kept while the tree is written
// (staging/repo, removed after).
//
// The Ref: a full commit id is used as it is (and must be in the
// repository); a name is looked up in the repository's refs as git looks
// up an unqualified name, tags before branches (refs/<name>,
// refs/tags/<name>, refs/heads/<name>; HEAD and full names such as
// refs/heads/main match themselves), an annotated tag peeled to its
// commit. With ResolveOnly a name resolves from the refs alone (nothing
// is fetched, nothing is written) and a commit id resolves to itself.
//
// A remote repository (https; http only with a commit id: the id is what
// verifies the content, since every object's id is its hash) is fetched
// with depth 1, just the commit, where the server can send it alone (a
// branch or tag tip, or any commit when it allows that); a commit id that
// is neither costs a fetch of every branch and tag. All its answers
// together must stay within Download.MaxBytes, the whole fetch within
// Download.Timeout. A file:// repository (below Download.FileRoots, as an
// archive's file) is read where it is, nothing copied; its symlinks are
// resolved inside the file root, and objects/info/alternates too.
//
// The tree is read object by object and written through an
// extract.Writer, so it gets an archive's rules (node/extract): files
// 0644 or 0755, directories 0755, symlinks only when their target stays
// inside the tree, every limit in Extract. Submodules (gitlinks) are
// skipped; an entry named .git, in any case, or with a name git never
// writes ("", ".", "..", a slash) is refused (UnsafeEntry). Nothing is
// checked out through git, whose worktree would follow the links a
// repository plants. Errors are *Error naming the URL (and the entry);
// when ctx ends, its error.
func FetchGit(ctx context.Context, spec GitSpec, staging string) (Result, error) {
	src, err := checkGitSpec(spec)
	if err != nil {
		return Result{}, err
	}
	if src.commitID && spec.ResolveOnly {
		return Result{Commit: spec.Ref}, nil
	}
	if !filepath.IsAbs(staging) {
		return Result{}, src.fail(InvalidSpec, fmt.Sprintf("staging %q is not an absolute path", staging), nil)
	}
	gctx, cancel := context.WithTimeout(ctx, src.limits.Timeout)
	defer cancel()
	res, err := fetchGit(gctx, src, staging)
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("git %s: %w", spec.URL, ctx.Err())
	case gctx.Err() != nil:
		return Result{}, src.fail(TimedOut, fmt.Sprintf("the git fetch did not finish within %s", src.limits.Timeout), nil)
	}
	var e *Error
	if errors.As(err, &e) {
		e.URL = spec.URL
		return Result{}, e
	}
	return Result{}, src.fail(GitFailed, "", err)
}

// gitSource is a GitSpec checked: its URL parsed, its limits with their
// defaults.
type gitSource struct {
	spec     GitSpec
	url      *url.URL
	limits   Limits
	commitID bool // Ref is a full commit id
}

func (s gitSource) fail(reason, msg string, err error) *Error {
	return &Error{Reason: reason, URL: s.spec.URL, Message: msg, Err: err}
}

// checkGitSpec checks a git source as the API does (the node checks
// again): the URL as an archive's, a full commit id for http, a ref name
// that can name a ref, clean subPath and into.
func checkGitSpec(spec GitSpec) (gitSource, error) {
	src := gitSource{spec: spec, commitID: isCommitID(spec.Ref)}
	invalid := func(err error) (gitSource, error) { return src, src.fail(InvalidSpec, "", err) }
	var err error
	if src.limits, err = spec.Download.withDefaults(); err != nil {
		return invalid(err)
	}
	if src.url, err = parseSourceURL(spec.URL); err != nil {
		return invalid(err)
	}
	if err := checkRef(spec.Ref, src.url.Scheme); err != nil {
		return invalid(err)
	}
	if err := (extract.Options{SubPath: spec.SubPath, Into: spec.Into, Limits: spec.Extract}).Check(); err != nil {
		return invalid(err)
	}
	for _, c := range strings.Split(spec.SubPath, "/") {
		if isDotGit(c) {
			return invalid(fmt.Errorf("subPath %q: a repository's tree holds no .git", spec.SubPath))
		}
	}
	if src.commitID && len(spec.Ref) != hash.HexSize {
		return src, src.fail(GitFailed, fmt.Sprintf("ref %s is a SHA-256 commit id: this node reads SHA-1 repositories only", spec.Ref), nil)
	}
	return src, nil
}

// checkRef accepts a full commit id, or for other than http a name a ref
// can have. The API applies all of git check-ref-format's rules; the
// node only looks the name up, so it needs no more than a printable one.
func checkRef(ref, scheme string) error {
	switch {
	case isCommitID(ref):
		return nil
	case scheme == "http":
		return fmt.Errorf("ref %q: an http URL takes only a full commit id (40 lowercase hex digits): plain http has no integrity, a commit id verifies the content", ref)
	case ref == "":
		return errors.New("ref: want a commit id, tag or branch")
	case len(ref) > maxRefLength:
		return fmt.Errorf("ref: %d bytes, more than %d", len(ref), maxRefLength)
	case strings.HasPrefix(ref, "-"):
		return fmt.Errorf("ref %q: must not start with '-'", ref)
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("ref %q: want printable ASCII without spaces", ref)
		}
	}
	return nil
}

// isCommitID: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
func isCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isDotGit: a name git takes for its own directory (Linux file names are
// case-sensitive, but the tree may be served from elsewhere, and no
// repository legitimately holds any spelling of it).
func isDotGit(name string) bool { return strings.EqualFold(name, ".git") }

// refList is a repository's refs: each name ("HEAD", "refs/heads/main")
// and the object it names, and the commit of each annotated tag the
// repository peeled.
type refList struct {
	hashes map[string]plumbing.Hash
	peeled map[string]plumbing.Hash
}

// target is what a Ref resolved to.
type target struct {
	// name is the ref matched ("" for a commit id).
	name string
	// hash is the commit, or for a tag the repository did not peel the
	// tag, to peel once its objects are there.
	hash plumbing.Hash
	// tip says hash is a ref's (a commit id can be anything).
	tip bool
}

// refCandidates are the full names an unqualified name may mean, in the
// order git tries them (ref_rev_parse_rules, less refs/remotes): so a tag
// wins over a branch of the same name. A full name matches itself first.
func refCandidates(ref string) []string {
	return []string{ref, "refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref}
}

// resolveRef finds what ref names in refs; ok is false when it names
// nothing. A commit id is taken as it is (whether the repository has it
// is known only once its objects are there).
func resolveRef(ref string, refs refList) (t target, ok bool) {
	if isCommitID(ref) {
		h := plumbing.NewHash(ref)
		for name, r := range refs.hashes {
			if r == h || refs.peeled[name] == h {
				return target{hash: h, tip: true}, true
			}
		}
		return target{hash: h}, true
	}
	for _, name := range refCandidates(ref) {
		h, found := refs.hashes[name]
		if !found {
			continue
		}
		if p, peeled := refs.peeled[name]; peeled {
			h = p
		}
		return target{name: name, hash: h, tip: true}, true
	}
	return target{}, false
}

// tips are the objects every branch and tag (and HEAD) name, sorted: the
// wants of a full fetch.
func (r refList) tips() []plumbing.Hash {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	for name, h := range r.hashes {
		if name == "HEAD" || strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/") {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// gitRepo is where a source's refs and objects come from: a remote
// repository, or one on this node's disk (file://).
type gitRepo interface {
	// refs lists the repository's refs.
	refs(ctx context.Context) (refList, error)
	// objects makes t's commit and its tree readable: a local
	// repository's own objects, a remote's fetched into dir.
	objects(ctx context.Context, t target, dir string) (storer.EncodedObjectStorer, error)
	// close releases what the repository holds open.
	close()
}

func fetchGit(ctx context.Context, src gitSource, staging string) (Result, error) {
	objects := filepath.Join(staging, RepoName)
	defer os.RemoveAll(objects) // the fetcher's own files, in the directory it owns; after repo.close
	var repo gitRepo
	var err error
	if src.url.Scheme == "file" {
		repo, err = openLocalRepo(src)
	} else {
		repo, err = openRemoteRepo(src)
	}
	if err != nil {
		return Result{}, err
	}
	defer repo.close()
	refs, err := repo.refs(ctx)
	if err != nil {
		return Result{}, err
	}
	t, ok := resolveRef(src.spec.Ref, refs)
	if !ok {
		return Result{}, src.fail(RefNotFound, fmt.Sprintf("ref %q names no tag or branch of the repository", src.spec.Ref), nil)
	}
	if src.spec.ResolveOnly {
		if _, remote := repo.(*remoteRepo); remote {
			return Result{Commit: t.hash.String()}, nil
		}
	}
	sto, err := repo.objects(ctx, t, objects)
	if err != nil {
		return Result{}, err
	}
	commit, err := peelToCommit(sto, t.hash)
	switch {
	case errors.Is(err, plumbing.ErrObjectNotFound) && t.name == "":
		return Result{}, src.fail(RefNotFound, fmt.Sprintf("commit %s is not in the repository", t.hash), nil)
	case err != nil:
		return Result{}, src.fail(GitFailed, fmt.Sprintf("reading the commit %s (ref %q)", t.hash, src.spec.Ref), err)
	}
	res := Result{Commit: commit.Hash.String()}
	if src.spec.ResolveOnly {
		return res, nil
	}
	res.Stats, err = writeCommitTree(ctx, sto, commit, src, filepath.Join(staging, TreeName))
	return res, err
}

// peelToCommit reads the commit h names: h itself, or the commit a chain
// of tags ends at.
func peelToCommit(sto storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	for range maxTagChain {
		obj, err := sto.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(sto, obj)
		case plumbing.TagObject:
			tag, err := object.DecodeTag(sto, obj)
			if err != nil {
				return nil, err
			}
			h = tag.Target
		default:
			return nil, fmt.Errorf("%s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("more than %d tags of tags", maxTagChain)
}

// writeCommitTree writes commit's tree (its SubPath) into dir.
func writeCommitTree(ctx context.Context, sto storer.EncodedObjectStorer, commit *object.Commit, src gitSource, dir string) (extract.Stats, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return extract.Stats{}, src.fail(ExtractFailed, "the staging tree (want a fresh staging directory)", err)
	}
	// Mkdir's mode is masked by the umask; Verify wants exactly 0755.
	if err := os.Chmod(dir, 0o755); err != nil {
		return extract.Stats{}, src.fail(ExtractFailed, "", err)
	}
	root, err := object.GetTree(sto, commit.TreeHash)
	if err != nil {
		return extract.Stats{}, src.fail(GitFailed, fmt.Sprintf("reading the tree of commit %s", commit.Hash), err)
	}
	start, err := subTree(sto, root, src.spec.SubPath)
	if err != nil {
		return extract.Stats{}, src.fail(InvalidSpec, fmt.Sprintf("subPath %q is not a directory in commit %s", src.spec.SubPath, commit.Hash), err)
	}
	w, err := extract.NewWriter(ctx, dir, extract.Options{SubPath: src.spec.SubPath, Into: src.spec.Into, Limits: src.spec.Extract})
	if err != nil {
		return extract.Stats{}, src.fail(ExtractFailed, "", err)
	}
	defer w.Close()
	tw := treeWriter{sto: sto, w: w}
	if err := tw.walk(start, src.spec.SubPath); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return w.Stats(), e
		}
		e = src.fail(extractReason(err), "", err)
		var ee *extract.EntryError
		if errors.As(err, &ee) {
			e.Entry = ee.Entry
		}
		return w.Stats(), e
	}
	return w.Stats(), nil
}

// subTree follows sub's components down from root, through directory
// entries only (never a symlink's or a submodule's).
func subTree(sto storer.EncodedObjectStorer, root *object.Tree, sub string) (*object.Tree, error) {
	if sub == "" {
		return root, nil
	}
	t := root
	for _, c := range strings.Split(sub, "/") {
		var next *object.TreeEntry
		for i := range t.Entries {
			if t.Entries[i].Name == c {
				next = &t.Entries[i]
				break
			}
		}
		switch {
		case next == nil:
			return nil, fmt.Errorf("no entry %q", c)
		case next.Mode != filemode.Dir:
			return nil, fmt.Errorf("%q is a %s, not a directory", c, modeName(next.Mode))
		}
		var err error
		if t, err = object.GetTree(sto, next.Hash); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// treeWriter feeds a git tree's entries to an extract.Writer.
type treeWriter struct {
	sto storer.EncodedObjectStorer
	w   *extract.Writer
}

// walk writes tree's entries, depth first in the tree's order, each named
// prefix/name; a directory before what it holds, so a path too long or a
// limit reached stops the descent.
func (tw treeWriter) walk(tree *object.Tree, prefix string) error {
	for _, e := range tree.Entries {
		name := path.Join(prefix, e.Name)
		if err := checkTreeName(e.Name); err != nil {
			return &extract.EntryError{Entry: name, Err: err}
		}
		if err := tw.entry(e, name); err != nil {
			return err
		}
	}
	return nil
}

func (tw treeWriter) entry(e object.TreeEntry, name string) error {
	switch e.Mode {
	case filemode.Dir:
		if err := tw.w.Dir(name); err != nil {
			return err
		}
		sub, err := object.GetTree(tw.sto, e.Hash)
		if err != nil {
			return &Error{Reason: GitFailed, Entry: name, Message: fmt.Sprintf("entry %q: reading the tree %s", name, e.Hash), Err: err}
		}
		return tw.walk(sub, name)
	case filemode.Regular, filemode.Deprecated, filemode.Executable:
		b, err := tw.blob(e, name)
		if err != nil {
			return err
		}
		perm := os.FileMode(0o644)
		if e.Mode == filemode.Executable {
			perm = 0o755
		}
		r := &blobReader{b: b}
		defer r.close()
		return tw.w.File(name, perm, b.Size, r)
	case filemode.Symlink:
		b, err := tw.blob(e, name)
		if err != nil {
			return err
		}
		r := &blobReader{b: b}
		defer r.close()
		return tw.w.Symlink(name, r)
	case filemode.Submodule:
		// A gitlink names a commit of another repository: no content here.
		return tw.w.Skip(name)
	}
	return &extract.EntryError{Entry: name, Err: fmt.Errorf("%w: git tree entry mode %o, which git does not write", extract.ErrFormat, uint32(e.Mode))}
}

func (tw treeWriter) blob(e object.TreeEntry, name string) (*object.Blob, error) {
	b, err := object.GetBlob(tw.sto, e.Hash)
	if err != nil {
		return nil, &Error{Reason: GitFailed, Entry: name, Message: fmt.Sprintf("entry %q: reading the blob %s", name, e.Hash), Err: err}
	}
	return b, nil
}

// checkTreeName refuses an entry name a tree must not hold: what git
// itself never writes ("", ".", "..", a slash, a NUL) and .git.
func checkTreeName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: a tree entry named %q", extract.ErrUnsafe, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: a tree entry name with a slash or NUL byte", extract.ErrUnsafe)
	case isDotGit(name):
		return fmt.Errorf("%w: a tree entry named %q, which git takes for its own directory", extract.ErrUnsafe, name)
	}
	return nil
}

func modeName(m filemode.FileMode) string {
	switch m {
	case filemode.Dir:
		return "directory"
	case filemode.Symlink:
		return "symlink"
	case filemode.Submodule:
		return "submodule"
	}
	return "file"
}

// blobReader opens a blob's content on the first Read, so a blob the
// Writer refuses by its size is never inflated.
type blobReader struct {
	b  *object.Blob
	rc io.ReadCloser
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		rc, err := r.b.Reader()
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	return r.rc.Read(p)
}

func (r *blobReader) close() {
	if r.rc != nil {
		r.rc.Close()
	}
}
