package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// remoteRepo is a repository served over smart HTTP(S), spoken to
// through go-git's transport with the download's own HTTP client (the
// node's CAs, its redirect rules), every answer counted against MaxBytes.
type remoteRepo struct {
	src     gitSource
	client  *http.Client
	budget  *budget
	session transport.UploadPackSession
	adv     *packp.AdvRefs
	sto     *filesystem.Storage
}

func openRemoteRepo(src gitSource) (*remoteRepo, error) {
	client, err := src.limits.client()
	if err != nil {
		return nil, src.fail(InvalidSpec, "", err)
	}
	b := &budget{max: src.limits.MaxBytes}
	client.Transport = &countingTransport{rt: client.Transport, b: b}
	ep, err := transport.NewEndpoint(src.url.String())
	if err != nil {
		client.CloseIdleConnections()
		return nil, src.fail(InvalidSpec, "", err)
	}
	// go-git follows a redirect of the first request only (git's
	// http.followRedirects=initial), checkRedirect's rules besides.
	session, err := githttp.NewClient(client).NewUploadPackSession(ep, nil)
	if err != nil {
		client.CloseIdleConnections()
		return nil, src.fail(GitFailed, "", err)
	}
	return &remoteRepo{src: src, client: client, budget: b, session: session}, nil
}

func (r *remoteRepo) refs(ctx context.Context) (refList, error) {
	adv, err := r.session.AdvertisedReferencesContext(ctx)
	if err != nil {
		return refList{}, r.failure("listing the repository's refs", err)
	}
	r.adv = adv
	l := refList{hashes: map[string]plumbing.Hash{}, peeled: adv.Peeled}
	for name, h := range adv.References {
		l.hashes[name] = h
	}
	if adv.Head != nil {
		l.hashes["HEAD"] = *adv.Head
	}
	return l, nil
}

// objects fetches t's commit into dir: with depth 1 when the server
// sends it alone (a tip, or any commit where allow-reachable-sha1-in-want
// says so) and knows shallow fetches; else every branch and tag, whole
// (a server refuses a want of a commit it does not advertise).
func (r *remoteRepo) objects(ctx context.Context, t target, dir string) (storer.EncodedObjectStorer, error) {
	caps := r.adv.Capabilities
	req := packp.NewUploadPackRequestFromCapabilities(caps)
	req.Wants = []plumbing.Hash{t.hash}
	if !t.tip && !caps.Supports(capability.AllowReachableSHA1InWant) {
		tips := refList{hashes: r.adv.References}.tips()
		r.src.limits.Log.Info("the commit is no branch or tag tip and the server sends no other commit by itself: fetching every branch and tag",
			"url", r.src.url.Redacted(), "commit", t.hash.String(), "refs", len(tips))
		req.Wants = tips
	} else if caps.Supports(capability.Shallow) {
		req.Depth = packp.DepthCommits(1)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return nil, r.src.fail(GitFailed, "", err)
		}
	}
	if caps.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return nil, r.src.fail(GitFailed, "", err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, r.src.fail(ExtractFailed, "the repository's directory in staging (want a fresh staging directory)", err)
	}
	r.sto = filesystem.NewStorageWithOptions(osfs.New(dir, osfs.WithBoundOS()), cache.NewObjectLRU(objectCacheBytes),
		filesystem.Options{LargeObjectThreshold: largeObjectBytes})
	if err := r.sto.Init(); err != nil {
		return nil, r.src.fail(ExtractFailed, "the repository's directory in staging", err)
	}
	what := fmt.Sprintf("fetching %s", t.hash)
	if t.name != "" {
		what = fmt.Sprintf("fetching %s (%s)", t.name, t.hash)
	}
	resp, err := r.session.UploadPack(ctx, req)
	if err != nil {
		return nil, r.failure(what, err)
	}
	defer resp.Close()
	if err := packfile.UpdateObjectStorage(r.sto, demux(req.Capabilities, resp)); err != nil {
		return nil, r.failure(what, err)
	}
	return r.sto, nil
}

// demux takes the pack out of the side-band, if the request asked for one
// (the server's errors come through it too).
func demux(c *capability.List, r io.Reader) io.Reader {
	switch {
	case c.Supports(capability.Sideband64k):
		return sideband.NewDemuxer(sideband.Sideband64k, r)
	case c.Supports(capability.Sideband):
		return sideband.NewDemuxer(sideband.Sideband, r)
	}
	return r
}

func (r *remoteRepo) close() {
	if r.sto != nil {
		r.sto.Close()
	}
	r.session.Close()
	r.client.CloseIdleConnections()
}

// failure classifies a failed step (what) of talking to the server.
func (r *remoteRepo) failure(what string, err error) *Error {
	fail := func(reason, msg string) *Error {
		if msg != "" {
			what += ": " + msg
		}
		return r.src.fail(reason, what, err)
	}
	cause := gitCause(err)
	var he *githttp.Err
	var ue *url.Error
	switch {
	case r.budget.over():
		return r.src.fail(TooLarge, fmt.Sprintf("%s: the server sent more than MaxBytes (%s)", what, sizeString(r.budget.max)), nil)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return r.src.fail(GitFailed, what+": no repository there (HTTP 404)", nil)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return r.src.fail(GitFailed, what+": the server wants credentials (HTTP 401 or 403): nodes fetch public repositories only", nil)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return r.src.fail(RefNotFound, fmt.Sprintf("ref %q: the repository is empty (no branch or tag)", r.src.spec.Ref), nil)
	case errors.As(cause, &he) && he.Response != nil:
		a := statusAttempt(he.Response.StatusCode, he.Response.Status, "")
		if a.err.Reason == DownloadFailed {
			a.err.Reason = GitFailed
		}
		return fail(a.err.Reason, "HTTP "+he.Response.Status)
	case errors.As(cause, &ue) && strings.HasPrefix(ue.Err.Error(), "http redirect: "):
		// go-git's own redirect rules (checked before checkRedirect's):
		// no https to http, no redirect after the first request. It has
		// no error type for them, only this wording.
		return fail(RedirectRefused, "")
	case errors.As(cause, &ue):
		// Refused redirects, certificates, connections: as a download's.
		a := requestAttempt(cause)
		a.err.Message = what + ": " + a.err.Message
		a.err.URL = r.src.spec.URL
		return a.err
	}
	return fail(GitFailed, "")
}

// gitCause unwraps go-git's error wrappers, which have no Unwrap.
func gitCause(err error) error {
	for {
		var u *plumbing.UnexpectedError
		var p *plumbing.PermanentError
		switch {
		case errors.As(err, &u) && u.Err != nil:
			err = u.Err
		case errors.As(err, &p) && p.Err != nil:
			err = p.Err
		default:
			return err
		}
	}
}

// budget is what a server may send in all (MaxBytes): the refs, the pack
// and any error bodies together.
type budget struct {
	max int64
	n   atomic.Int64
}

func (b *budget) over() bool { return b.n.Load() > b.max }

// errOverBudget ends a body that went past the budget.
var errOverBudget = errors.New("the server sent more than MaxBytes")

// countingTransport counts every response body against a budget.
type countingTransport struct {
	rt http.RoundTripper
	b  *budget
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &countedBody{rc: resp.Body, b: t.b}
	return resp, nil
}

type countedBody struct {
	rc io.ReadCloser
	b  *budget
}

func (c *countedBody) Read(p []byte) (int, error) {
	if c.b.over() {
		return 0, errOverBudget
	}
	n, err := c.rc.Read(p)
	if c.b.n.Add(int64(n)) > c.b.max {
		return 0, errOverBudget
	}
	return n, err
}

func (c *countedBody) Close() error { return c.rc.Close() }
