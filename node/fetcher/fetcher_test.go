package fetcher

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/left4me/left4me/node/extract"
)

// fetch runs FetchArchive into a fresh staging directory.
func fetch(t *testing.T, spec FetchSpec) (string, extract.Stats, error) {
	t.Helper()
	staging := t.TempDir()
	stats, err := FetchArchive(context.Background(), spec, staging)
	return staging, stats, err
}

func smSpec(url string, archive []byte) FetchSpec {
	return FetchSpec{URL: url, SHA256: sha(archive), StripComponents: 1, Into: "left4dead2", Download: fast()}
}

func TestFetchSourceModTarGz(t *testing.T) {
	archive := tarGz(t, sourcemod("sm-1.12/")...)
	s := serving(t, archive)
	staging, stats, err := fetch(t, smSpec(s.URL+"/sourcemod-1.12.0-linux.tar.gz", archive))
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(staging, TreeName)
	if got := listing(t, tree); !slices.Equal(got, sourcemodTree) {
		t.Errorf("tree:\n%v\nwant:\n%v", got, sourcemodTree)
	}
	if got := readFile(t, filepath.Join(tree, "left4dead2/cfg/sourcemod/sourcemod.cfg")); got != "sm_show_activity 13\n" {
		t.Errorf("sourcemod.cfg = %q", got)
	}
	if got := names(t, staging); !slices.Equal(got, []string{TreeName}) {
		t.Errorf("staging holds %v: want only the tree (the download removed)", got)
	}
	if stats.Files != 6 || stats.Symlinks != 1 || stats.Entries != len(sourcemod("")) {
		t.Errorf("stats %+v", stats)
	}
	// What the agent does next accepts it.
	if err := extract.Verify(tree, extract.VerifyOptions{}); err != nil {
		t.Errorf("Verify refuses the fetched tree: %v", err)
	}
}

func TestFetchZipAndTarXz(t *testing.T) {
	for _, c := range []struct {
		name    string
		archive []byte
	}{
		{"zip", zipball(t, sourcemod("sm-1.12/")...)},
		{"tar.xz", tarXz(t, sourcemod("sm-1.12/")...)},
		{"tar", tarball(t, sourcemod("sm-1.12/")...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := serving(t, c.archive)
			// The URL says nothing of the format: it is read from the content.
			staging, _, err := fetch(t, smSpec(s.URL+"/download?id=7150", c.archive))
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, sourcemodTree) {
				t.Errorf("tree:\n%v\nwant:\n%v", got, sourcemodTree)
			}
		})
	}
}

func TestFetchSubPath(t *testing.T) {
	archive := tarGz(t, sourcemod("sm-1.12/")...)
	s := serving(t, archive)
	spec := smSpec(s.URL+"/sm.tar.gz", archive)
	spec.SubPath, spec.Into = "cfg", "left4dead2/cfg"
	staging, _, err := fetch(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"left4dead2/ dir", "left4dead2/cfg/ dir", "left4dead2/cfg/sourcemod/ dir", "left4dead2/cfg/sourcemod/sourcemod.cfg 0644"}
	if got := listing(t, filepath.Join(staging, TreeName)); !slices.Equal(got, want) {
		t.Errorf("tree %v, want %v", got, want)
	}
}

func TestPoisonedArchiveRefused(t *testing.T) {
	ents := append(sourcemod("sm-1.12/"), symlink("sm-1.12/addons/sourcemod/data", "../../../../../etc"))
	for _, c := range []struct {
		name    string
		archive []byte
	}{
		{"tar.gz", tarGz(t, ents...)},
		{"zip", zipball(t, ents...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := serving(t, c.archive)
			url := s.URL + "/sm.tar.gz"
			staging, _, err := fetch(t, smSpec(url, c.archive))
			e := wantReason(t, err, UnsafeEntry, url, `entry "sm-1.12/addons/sourcemod/data"`)
			if e.Entry != "sm-1.12/addons/sourcemod/data" {
				t.Errorf("Entry %q", e.Entry)
			}
			if !errors.Is(err, extract.ErrUnsafe) {
				t.Errorf("%v is not extract.ErrUnsafe", err)
			}
			if _, err := os.Lstat(filepath.Join(staging, TreeName, "left4dead2/addons/sourcemod/data")); err == nil {
				t.Error("the symlink was made")
			}
			if _, err := os.Lstat(filepath.Join(staging, DownloadName)); err == nil {
				t.Error("the download was left behind")
			}
		})
	}
}

func TestFetchFailures(t *testing.T) {
	html := []byte("<!DOCTYPE html><html>a login page</html>")
	s := newServer(t, false, func(_ *server, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Write(html)
			return
		}
		w.WriteHeader(404)
	})
	staging, _, err := fetch(t, smSpec(s.URL+"/gone.tar.gz", nil))
	wantReason(t, err, DownloadFailed, s.URL+"/gone.tar.gz", "HTTP 404")
	if got := names(t, staging); !slices.Equal(got, []string{TreeName}) {
		t.Errorf("staging holds %v after a failed download", got)
	}
	_, _, err = fetch(t, smSpec(s.URL+"/login", html))
	wantReason(t, err, UnsupportedArchive, s.URL+"/login", "an HTML page")

	// A staging dir used before is refused, not mixed into.
	staging = t.TempDir()
	os.Mkdir(filepath.Join(staging, TreeName), 0o755)
	_, err = FetchArchive(context.Background(), smSpec(s.URL+"/login", html), staging)
	wantReason(t, err, ExtractFailed, "want a fresh staging directory")
}

func TestFetchCanceled(t *testing.T) {
	archive := tarGz(t, sourcemod("sm/")...)
	s := serving(t, archive)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := FetchArchive(ctx, smSpec(s.URL+"/sm.tar.gz", archive), t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FetchArchive with a canceled context = %v", err)
	}
}
