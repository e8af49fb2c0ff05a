package fetcher

import (
	"context"
	"errors"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/sys/unix"
)

// How repositories' objects are read.
const (
	// objectCacheBytes bounds the decoded objects kept in memory (trees
	// mostly: each blob is read once).
	objectCacheBytes = 16 * cache.MiByte
	// largeObjectBytes: a larger object is streamed from its pack, not
	// inflated into memory whole (a game's map or vpk can be a GiB).
	largeObjectBytes = 1 << 20
)

// localRepo is a repository on this node's disk (file://), read where it
// is: its git directory, found below a file root without leaving it.
type localRepo struct {
	src gitSource
	sto *filesystem.Storage
}

// openLocalRepo opens the repository the URL names, below one of the
// node's file roots: a bare repository or a directory holding .git. The
// path is resolved with openat2 RESOLVE_BENEATH as an archive's file is
// (a symlink out of the root is refused), and the repository is read
// through a filesystem bound to it, so a symlink inside it (objects,
// refs) cannot lead out either; alternates resolve inside the file root.
func openLocalRepo(src gitSource) (*localRepo, error) {
	root, rel, err := fileRoot(src.url.Path, src.limits.FileRoots)
	if err != nil {
		return nil, err
	}
	d, err := openBeneath(root, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, GitFailed)
	if err != nil {
		return nil, err
	}
	d.Close() // it is there, below the root; the bound filesystem reads it
	rootFS := osfs.New(root, osfs.WithBoundOS())
	repoFS, err := rootFS.Chroot(rel)
	if err != nil {
		return nil, src.fail(GitFailed, "", err)
	}
	gitFS, err := gitDir(repoFS)
	if err != nil {
		return nil, src.fail(GitFailed, "", err)
	}
	sto := filesystem.NewStorageWithOptions(gitFS, cache.NewObjectLRU(objectCacheBytes), filesystem.Options{
		LargeObjectThreshold: largeObjectBytes,
		AlternatesFS:         rootFS,
	})
	return &localRepo{src: src, sto: sto}, nil
}

// gitDir finds the git directory of a repository: dir/.git, or dir itself
// when it is bare.
func gitDir(dir billy.Filesystem) (billy.Filesystem, error) {
	if fi, err := dir.Stat(".git"); err == nil {
		if !fi.IsDir() {
			return nil, errors.New(".git is a file (a linked worktree or a submodule's checkout): name the repository's git directory")
		}
		if dir, err = dir.Chroot(".git"); err != nil {
			return nil, err
		}
	}
	head, herr := dir.Stat("HEAD")
	objects, oerr := dir.Stat("objects")
	if herr != nil || oerr != nil || head.IsDir() || !objects.IsDir() {
		return nil, errors.New("not a git repository (no HEAD and objects directory, nor a .git holding them)")
	}
	return dir, nil
}

func (r *localRepo) refs(ctx context.Context) (refList, error) {
	l := refList{hashes: map[string]plumbing.Hash{}, peeled: map[string]plumbing.Hash{}}
	iter, err := r.sto.IterReferences()
	if err != nil {
		return l, r.src.fail(GitFailed, "listing the repository's refs", err)
	}
	defer iter.Close()
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch ref.Type() {
		case plumbing.HashReference:
			l.hashes[ref.Name().String()] = ref.Hash()
		case plumbing.SymbolicReference:
			// HEAD of a repository whose branch has no commit yet
			// resolves to nothing: it is no ref then.
			if res, err := storer.ResolveReference(r.sto, ref.Name()); err == nil {
				l.hashes[ref.Name().String()] = res.Hash()
			}
		}
		return nil
	})
	if err != nil {
		return l, r.src.fail(GitFailed, "listing the repository's refs", err)
	}
	return l, nil
}

// objects are the repository's own: nothing is copied.
func (r *localRepo) objects(context.Context, target, string) (storer.EncodedObjectStorer, error) {
	return r.sto, nil
}

func (r *localRepo) close() { r.sto.Close() }
