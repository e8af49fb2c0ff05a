package validation

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Limits of Overlay sources, so that an Overlay stays small in etcd and
// every node can be told what it may fetch before it fetches anything.
const (
	// MaxSourceURLLength bounds archive and git URLs (what browsers and
	// most servers take).
	MaxSourceURLLength = 2048
	// MaxStripComponents bounds archive.stripComponents.
	MaxStripComponents = 32
	// MaxGitRefLength bounds git.ref (git's own limit for a ref name
	// component is the file system's, 255).
	MaxGitRefLength = 255
	// MaxWorkshopIDs bounds workshop.items and workshop.collections
	// together.
	MaxWorkshopIDs = 500
	// MinWorkshopCheckInterval and MaxWorkshopCheckInterval bound
	// workshop.checkInterval: Steam is asked at most every 5 minutes per
	// node, and at least once a day.
	MinWorkshopCheckInterval = 5 * time.Minute
	MaxWorkshopCheckInterval = 24 * time.Hour
	// MinGitCheckInterval and MaxGitCheckInterval bound git.checkInterval:
	// a branch is resolved (one small request) at most every minute per
	// node, and at least once a day.
	MinGitCheckInterval = time.Minute
	MaxGitCheckInterval = 24 * time.Hour
	// MaxFiles bounds how many inline files one Overlay holds.
	MaxFiles = 128
	// MaxFilePathLength bounds the path of one inline file.
	MaxFilePathLength = 256
	// MaxFilesBytes bounds the inline files' content, all together.
	MaxFilesBytes = 256 << 10

	// MaxWorkshopItemsStatus bounds status.items (collections expanded).
	MaxWorkshopItemsStatus = 1000
	// MaxWorkshopTitleLength bounds an item's title in status, in bytes.
	MaxWorkshopTitleLength = 512
	// MaxNodeOverlays bounds a Node's status.overlays.
	MaxNodeOverlays = 1024
	// MaxNodeOverlayDigests bounds the digests one entry of it lists.
	MaxNodeOverlayDigests = 8
)

// scpLikeRE matches git's scp-like ssh addresses (git@github.com:o/r.git).
var scpLikeRE = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]`)

// sourceKinds are OverlaySource's fields, for messages.
var sourceKinds = []string{v1.SourcePath, v1.SourceArchive, v1.SourceGit, v1.SourceWorkshop, v1.SourceFiles}

// ValidateOverlaySpec checks an Overlay: exactly one source, and that one.
func ValidateOverlaySpec(s *v1.OverlaySpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	sp := p.Child("source")
	kinds := s.Source.Kinds()
	if len(kinds) == 0 {
		allErrs = append(allErrs, field.Required(sp, "set one of "+strings.Join(sourceKinds, ", ")))
	}
	for _, k := range kinds[min(1, len(kinds)):] {
		allErrs = append(allErrs, field.Forbidden(sp.Child(k), fmt.Sprintf("an Overlay has one source, and %s is set", kinds[0])))
	}
	src := &s.Source
	if src.Path != "" {
		allErrs = append(allErrs, ValidateOverlayPath(src.Path, sp.Child("path"))...)
	}
	if src.Archive != nil {
		allErrs = append(allErrs, validateArchiveSource(src.Archive, sp.Child("archive"))...)
	}
	if src.Git != nil {
		allErrs = append(allErrs, validateGitSource(src.Git, sp.Child("git"))...)
	}
	if src.Workshop != nil {
		allErrs = append(allErrs, validateWorkshopSource(src.Workshop, sp.Child("workshop"))...)
	}
	if src.Files != nil {
		allErrs = append(allErrs, validateFiles(src.Files, sp.Child("files"))...)
	}
	if len(s.Description) > MaxMessageLength {
		allErrs = append(allErrs, field.TooLong(p.Child("description"), "", MaxMessageLength))
	}
	return allErrs
}

func validateArchiveSource(a *v1.ArchiveSource, p *field.Path) field.ErrorList {
	allErrs, u := validateSourceURL(a.URL, p.Child("url"))
	switch {
	case a.SHA256 == "" && u != nil && u.Scheme != "file":
		allErrs = append(allErrs, field.Required(p.Child("sha256"),
			fmt.Sprintf("required for %s URLs: what a URL serves can change, and every node must extract the same bytes", u.Scheme)))
	case a.SHA256 != "" && !v1.IsSHA256Hex(a.SHA256):
		allErrs = append(allErrs, field.Invalid(p.Child("sha256"), a.SHA256, "must be the archive's SHA-256: 64 lowercase hex digits (sha256sum prints it)"))
	}
	if a.StripComponents < 0 || a.StripComponents > MaxStripComponents {
		allErrs = append(allErrs, field.Invalid(p.Child("stripComponents"), a.StripComponents, fmt.Sprintf("must be between 0 and %d", MaxStripComponents)))
	}
	allErrs = append(allErrs, validateOptionalRelPath(a.SubPath, p.Child("subPath"), "the archive's root")...)
	return append(allErrs, validateOptionalRelPath(a.Into, p.Child("into"), "the game root")...)
}

func validateGitSource(g *v1.GitSource, p *field.Path) field.ErrorList {
	allErrs, u := validateSourceURL(g.URL, p.Child("url"))
	rp := p.Child("ref")
	switch {
	case g.Ref == "":
		allErrs = append(allErrs, field.Required(rp, "a commit id, tag or branch"))
	case len(g.Ref) > MaxGitRefLength:
		allErrs = append(allErrs, field.TooLong(rp, "", MaxGitRefLength))
	case v1.IsCommitID(g.Ref):
	case u != nil && u.Scheme == "http":
		allErrs = append(allErrs, field.Invalid(rp, g.Ref, "must be a full commit id (40 or 64 lowercase hex digits) for an http URL: plain http has no integrity, a commit id verifies the content"))
	default:
		if msg := checkGitRefName(g.Ref); msg != "" {
			allErrs = append(allErrs, field.Invalid(rp, g.Ref, msg))
		}
	}
	if cp := p.Child("checkInterval"); g.CheckInterval != "" {
		if v1.IsCommitID(g.Ref) {
			allErrs = append(allErrs, field.Invalid(cp, g.CheckInterval, "must be empty for a commit id: a commit never changes"))
		} else if d, err := time.ParseDuration(g.CheckInterval); err != nil {
			allErrs = append(allErrs, field.Invalid(cp, g.CheckInterval, `must be a duration such as "10m"`))
		} else if d < MinGitCheckInterval || d > MaxGitCheckInterval {
			allErrs = append(allErrs, field.Invalid(cp, g.CheckInterval, fmt.Sprintf("must be between %s and %s", shortDuration(MinGitCheckInterval), shortDuration(MaxGitCheckInterval))))
		}
	}
	allErrs = append(allErrs, validateOptionalRelPath(g.SubPath, p.Child("subPath"), "the repository's root")...)
	return append(allErrs, validateOptionalRelPath(g.Into, p.Child("into"), "the game root")...)
}

// checkGitRefName applies git check-ref-format's rules (one-level names
// allowed, as "main" and "v1.2.0" are), printable ASCII only, and no
// leading '-' that a git command line would take for an option. It says
// what is wrong, or "".
func checkGitRefName(ref string) string {
	const what = "must be a full commit id (40 or 64 lowercase hex digits), or a tag or branch name"
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; c <= ' ' || c >= 0x7f {
			return what + ": printable ASCII without spaces"
		}
	}
	switch {
	case strings.ContainsAny(ref, "~^:?*[\\"):
		return what + `: none of ~ ^ : ? * [ \`
	case strings.HasPrefix(ref, "-"):
		return what + ": not starting with '-'"
	case ref == "@" || strings.Contains(ref, "@{"):
		return what + ": not '@' and no '@{'"
	case strings.Contains(ref, ".."):
		return what + ": no '..'"
	case strings.HasSuffix(ref, "."):
		return what + ": not ending in '.'"
	}
	for _, c := range strings.Split(ref, "/") {
		switch {
		case c == "":
			return what + ": no empty components ('a//b', a leading or trailing '/')"
		case strings.HasPrefix(c, "."):
			return what + ": no component starting with '.'"
		case strings.HasSuffix(c, ".lock"):
			return what + ": no component ending in '.lock'"
		}
	}
	return ""
}

// validateSourceURL checks an archive or git URL: printable ASCII, an
// https, http or file scheme, no credentials or fragment, a host for http
// and https, and for file an absolute clean path and no host. It returns
// the parsed URL when it is usable for the checks that depend on its
// scheme (nil when it is not).
func validateSourceURL(raw string, p *field.Path) (field.ErrorList, *url.URL) {
	bad := func(msg string) (field.ErrorList, *url.URL) { return field.ErrorList{field.Invalid(p, raw, msg)}, nil }
	switch {
	case raw == "":
		return field.ErrorList{field.Required(p, "an https, http or file URL")}, nil
	case len(raw) > MaxSourceURLLength:
		return field.ErrorList{field.TooLong(p, "", MaxSourceURLLength)}, nil
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return bad("must be printable ASCII without spaces (percent-encode the rest)")
		}
	}
	if scpLikeRE.MatchString(raw) {
		return bad("an ssh address (user@host:path) is not supported: use the repository's https URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("must be a URL: " + err.Error())
	}
	switch u.Scheme {
	case "https", "http", "file":
	case "":
		return bad("must be an absolute URL: https://, http:// or file:///")
	case "ssh", "git", "git+ssh":
		return bad(fmt.Sprintf("scheme %q is not supported (use https, http or file): nodes hold no ssh keys, and git:// has no integrity", u.Scheme))
	default:
		return bad(fmt.Sprintf("scheme %q is not supported: use https, http or file", u.Scheme))
	}
	switch {
	case u.User != nil:
		return bad("must not hold credentials (user:password@): a manifest is no place for secrets")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment ('#')")
	case u.Opaque != "":
		if u.Scheme == "file" {
			return bad("must name an absolute path on the node: file:///path")
		}
		return bad(fmt.Sprintf("must be %s://host/path", u.Scheme))
	}
	if u.Scheme == "file" {
		return validateFileURL(raw, u, p)
	}
	if u.Hostname() == "" {
		return bad("must name a host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("the port must be between 1 and 65535")
		}
	}
	return nil, u
}

// validateFileURL: file:///abs/path (or file:/abs/path), read on each
// node. No host (not even localhost: one spelling), no query.
func validateFileURL(raw string, u *url.URL, p *field.Path) (field.ErrorList, *url.URL) {
	bad := func(msg string) (field.ErrorList, *url.URL) { return field.ErrorList{field.Invalid(p, raw, msg)}, nil }
	switch {
	case u.Host != "":
		return bad(fmt.Sprintf("a file URL names a path on each node, without a host: file:///path, not file://%s/...", u.Host))
	case u.RawQuery != "" || u.ForceQuery:
		return bad("a file URL has no query ('?')")
	case !strings.HasPrefix(u.Path, "/"):
		return bad("must name an absolute path on the node: file:///path")
	case u.Path == "/":
		return bad("must name a file, not /")
	case hasControl(u.Path):
		return bad("the path must not contain control characters")
	case hasDotDot(u.Path) || path.Clean(u.Path) != u.Path:
		return bad("the path must be clean: no '..', '.' or empty components, no trailing '/'")
	}
	return nil, u
}

func validateWorkshopSource(w *v1.WorkshopSource, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(w.Items)+len(w.Collections) == 0 {
		allErrs = append(allErrs, field.Required(p, "at least one of items and collections"))
	}
	if n := len(w.Items) + len(w.Collections); n > MaxWorkshopIDs {
		// Not each id: a body of many bad ids must not cost more than its size.
		e := field.TooMany(p, n, MaxWorkshopIDs)
		e.Detail = fmt.Sprintf("items and collections together must have at most %d ids, not %d", MaxWorkshopIDs, n)
		return field.ErrorList{e}
	}
	seen := map[string]string{}
	for _, list := range []struct {
		name string
		ids  []string
	}{{"items", w.Items}, {"collections", w.Collections}} {
		for i, id := range list.ids {
			ip := p.Child(list.name).Index(i)
			switch {
			case !v1.IsWorkshopID(id):
				allErrs = append(allErrs, field.Invalid(ip, id, "must be a Steam Workshop id: decimal digits, as in the item's URL (?id=123456789)"))
			case seen[id] == list.name:
				allErrs = append(allErrs, field.Duplicate(ip, id))
			case seen[id] != "":
				allErrs = append(allErrs, field.Invalid(ip, id, "is listed in "+seen[id]+" too"))
			default:
				seen[id] = list.name
			}
		}
	}
	cp := p.Child("checkInterval")
	if d, err := time.ParseDuration(w.CheckInterval); err != nil {
		allErrs = append(allErrs, field.Invalid(cp, w.CheckInterval, `must be a duration such as "1h"`))
	} else if d < MinWorkshopCheckInterval || d > MaxWorkshopCheckInterval {
		allErrs = append(allErrs, field.Invalid(cp, w.CheckInterval, fmt.Sprintf("must be between %s and %s", shortDuration(MinWorkshopCheckInterval), shortDuration(MaxWorkshopCheckInterval))))
	}
	return append(allErrs, validateOptionalRelPath(w.Into, p.Child("into"), "the game root")...)
}

// shortDuration is "5m" rather than time.Duration's "5m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// validateFiles checks inline files: at least one, at most MaxFiles, each
// path a clean relative path (no file also a directory of another), each
// content UTF-8 text without NUL, MaxFilesBytes of content in all.
func validateFiles(files map[string]string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case len(files) == 0:
		return field.ErrorList{field.Required(p, "at least one file: a path below the game root and its content")}
	case len(files) > MaxFiles:
		// Not each one: a body of many tiny entries must not cost more
		// than its size.
		return field.ErrorList{field.TooMany(p, len(files), MaxFiles)}
	}
	paths := make([]string, 0, len(files))
	total := 0
	for k, content := range files {
		paths = append(paths, k)
		total += len(content)
	}
	sort.Strings(paths) // errors in a stable order
	for _, k := range paths {
		kp := p.Key(k)
		if len(k) > MaxFilePathLength {
			// The field path names the entry without repeating all of it.
			allErrs = append(allErrs, field.TooLong(p.Key(strings.ToValidUTF8(k[:64], "")+"..."), "", MaxFilePathLength))
			continue
		}
		if errs := validateRelPath(k, kp, "the game root"); len(errs) > 0 {
			allErrs = append(allErrs, errs...)
			continue
		}
		if msg := checkText(files[k]); msg != "" {
			allErrs = append(allErrs, field.Invalid(kp, field.OmitValueType{}, msg))
		}
	}
	// In byte order a directory's files follow it directly ("a/b" < "a/b/c"
	// < "a/b0"), except where a byte below '/' sorts between them.
	for i, k := range paths {
		for _, next := range paths[i+1:] {
			if !strings.HasPrefix(next, k) {
				break
			}
			if strings.HasPrefix(next, k+"/") {
				allErrs = append(allErrs, field.Invalid(p.Key(k), k, fmt.Sprintf("is a file, and %q needs it to be a directory", next)))
				break
			}
		}
	}
	if total > MaxFilesBytes {
		e := field.TooLong(p, "", MaxFilesBytes)
		e.Detail = fmt.Sprintf("the contents total %d bytes; an Overlay holds at most %d (256 KiB) inline: put larger trees in an archive or git source", total, MaxFilesBytes)
		allErrs = append(allErrs, e)
	}
	return allErrs
}

// checkText says why content is not text a game's cfg loader reads, or "".
func checkText(content string) string {
	if i := strings.IndexByte(content, 0); i >= 0 {
		return fmt.Sprintf("the content must be text: byte %d is NUL", i)
	}
	if !utf8.ValidString(content) {
		for i, r := range content {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(content[i:]); size == 1 {
					return fmt.Sprintf("the content must be UTF-8 text: byte %d is not", i)
				}
			}
		}
	}
	return ""
}

// validateOptionalRelPath checks subPath and into: empty is the root.
func validateOptionalRelPath(ref string, p *field.Path, root string) field.ErrorList {
	if ref == "" {
		return nil
	}
	return validateRelPath(ref, p, root)
}

// validateRelPath holds a path below root to the rules of
// ValidateOverlayPath, and to valid UTF-8.
func validateRelPath(ref string, p *field.Path, root string) field.ErrorList {
	if !utf8.ValidString(ref) {
		return field.ErrorList{field.Invalid(p, ref, "must be valid UTF-8")}
	}
	return checkRelPath(ref, p, root)
}

// ValidateOverlayStatus checks what the control plane writes about an
// Overlay: digests and commit ids in their forms, bounded lists, counts
// that are not negative.
func ValidateOverlayStatus(s *v1.OverlayStatus, p *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateConditions(s.Conditions, p.Child("conditions"))
	if s.Digest != "" && !v1.IsDigest(s.Digest) {
		allErrs = append(allErrs, field.Invalid(p.Child("digest"), s.Digest, `must be "sha256:" and 64 lowercase hex digits`))
	}
	if s.Commit != "" && !v1.IsCommitID(s.Commit) {
		allErrs = append(allErrs, field.Invalid(p.Child("commit"), s.Commit, "must be a full commit id (40 or 64 lowercase hex digits)"))
	}
	allErrs = append(allErrs, validateWorkshopItems(s.Items, p.Child("items"))...)
	for _, c := range []struct {
		name string
		n    int32
	}{{"nodes", s.Nodes}, {"ready", s.Ready}, {"failed", s.Failed}} {
		if c.n < 0 {
			allErrs = append(allErrs, field.Invalid(p.Child(c.name), c.n, "must not be negative"))
		}
	}
	return allErrs
}

// validateWorkshopItems checks a status's Workshop items: bounded, ids in
// their form, titles bounded.
func validateWorkshopItems(items []v1.WorkshopItem, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(items) > MaxWorkshopItemsStatus {
		allErrs = append(allErrs, field.TooMany(p, len(items), MaxWorkshopItemsStatus))
	}
	for i, it := range items {
		ip := p.Index(i)
		if !v1.IsWorkshopID(it.ID) {
			allErrs = append(allErrs, field.Invalid(ip.Child("id"), it.ID, "must be a Steam Workshop id"))
		}
		if len(it.Title) > MaxWorkshopTitleLength {
			allErrs = append(allErrs, field.TooLong(ip.Child("title"), "", MaxWorkshopTitleLength))
		}
		if it.Size < 0 {
			allErrs = append(allErrs, field.Invalid(ip.Child("size"), it.Size, "must not be negative"))
		}
	}
	return allErrs
}

// nodeOverlayPhases are NodeOverlay.Phase's values.
var nodeOverlayPhases = []string{v1.OverlayPhasePending, v1.OverlayPhaseFetching, v1.OverlayPhaseReady, v1.OverlayPhaseFailed}

func validateNodeOverlays(list []v1.NodeOverlay, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(list) > MaxNodeOverlays {
		allErrs = append(allErrs, field.TooMany(p, len(list), MaxNodeOverlays))
	}
	seen := map[string]bool{}
	for i, n := range list {
		ip := p.Index(i)
		for _, f := range []struct{ name, v string }{{"namespace", n.Namespace}, {"name", n.Name}} {
			for _, msg := range utilvalidation.IsDNS1123Label(f.v) {
				allErrs = append(allErrs, field.Invalid(ip.Child(f.name), f.v, msg))
			}
		}
		if key := n.Namespace + "/" + n.Name; seen[key] {
			allErrs = append(allErrs, field.Duplicate(ip, key))
		} else {
			seen[key] = true
		}
		if !contains(nodeOverlayPhases, n.Phase) {
			allErrs = append(allErrs, field.NotSupported(ip.Child("phase"), n.Phase, nodeOverlayPhases))
		}
		if n.Digest != "" && !v1.IsDigest(n.Digest) {
			allErrs = append(allErrs, field.Invalid(ip.Child("digest"), n.Digest, `must be "sha256:" and 64 lowercase hex digits`))
		}
		if len(n.Digests) > MaxNodeOverlayDigests {
			allErrs = append(allErrs, field.TooMany(ip.Child("digests"), len(n.Digests), MaxNodeOverlayDigests))
		}
		for j, d := range n.Digests {
			if !v1.IsDigest(d) {
				allErrs = append(allErrs, field.Invalid(ip.Child("digests").Index(j), d, `must be "sha256:" and 64 lowercase hex digits`))
			}
		}
		if n.ObservedGeneration < 0 {
			allErrs = append(allErrs, field.Invalid(ip.Child("observedGeneration"), n.ObservedGeneration, "must not be negative"))
		}
		if n.Commit != "" && !v1.IsCommitID(n.Commit) {
			allErrs = append(allErrs, field.Invalid(ip.Child("commit"), n.Commit, "must be a full commit id (40 or 64 lowercase hex digits)"))
		}
		allErrs = append(allErrs, validateWorkshopItems(n.Items, ip.Child("items"))...)
		if n.Reason != "" && !reasonRE.MatchString(n.Reason) {
			allErrs = append(allErrs, field.Invalid(ip.Child("reason"), n.Reason, "must be a CamelCase word"))
		}
		if len(n.Message) > MaxMessageLength {
			allErrs = append(allErrs, field.TooLong(ip.Child("message"), "", MaxMessageLength))
		}
	}
	return allErrs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
