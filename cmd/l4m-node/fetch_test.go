package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/left4me/left4me/node/fetcher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// smArchive is a small SourceMod-like release: sm-1.12/addons/...
func smArchive(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{
		"sm-1.12/addons/sourcemod/plugins/basecommands.smx": "FFSP plugin",
		"sm-1.12/cfg/sourcemod/sourcemod.cfg":               "sm_show_activity 13\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// root is l4m-node's command as main builds it, as far as the internal
// commands care.
func root() *cobra.Command {
	cmd := &cobra.Command{Use: "l4m-node", Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
		RunE: func(*cobra.Command, []string) error { return nil }}
	addInternalCommands(cmd)
	return cmd
}

func specJSON(t *testing.T, url string, archive []byte) []byte {
	sum := sha256.Sum256(archive)
	data, err := json.Marshal(fetcher.Job{Archive: &fetcher.FetchSpec{URL: url, SHA256: hex.EncodeToString(sum[:]), StripComponents: 1, Into: "left4dead2"}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFetchArchiveCommand(t *testing.T) {
	archive := smArchive(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sm.tar.gz" {
			w.Write(archive)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	// The spec on stdin.
	staging := t.TempDir()
	cmd := root()
	var out bytes.Buffer
	cmd.SetArgs([]string{"fetch", "--staging", staging})
	cmd.SetIn(bytes.NewReader(specJSON(t, srv.URL+"/sm.tar.gz", archive)))
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "l4m-fetch-result: {\"result\":{\"stats\":{") {
		t.Errorf("stdout %q: want the result line", out.String())
	}
	cfg, err := os.ReadFile(filepath.Join(staging, "tree", "left4dead2", "cfg", "sourcemod", "sourcemod.cfg"))
	if err != nil || string(cfg) != "sm_show_activity 13\n" {
		t.Errorf("the tree's sourcemod.cfg: %q, %v", cfg, err)
	}

	// The spec in a file; a 404.
	staging = t.TempDir()
	spec := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(spec, specJSON(t, srv.URL+"/gone.tar.gz", archive), 0o644)
	cmd = root()
	out.Reset()
	cmd.SetArgs([]string{"fetch", "--spec", spec, "--staging", staging})
	cmd.SetOut(&out)
	err = cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("a 404: %v", err)
	}
	if !strings.Contains(out.String(), `"reason":"DownloadFailed"`) {
		t.Errorf("stdout %q: want the failure's result line", out.String())
	}

	// A spec with a field the fetcher does not know is refused, not half-read.
	cmd = root()
	out.Reset()
	cmd.SetArgs([]string{"fetch", "--staging", t.TempDir()})
	cmd.SetIn(strings.NewReader(`{"url": "https://example.org/a", "sha265": "typo"}`))
	cmd.SetOut(&out)
	if err := cmd.Execute(); err == nil || !strings.Contains(out.String(), `"reason":"InvalidSpec"`) {
		t.Errorf("an unknown field: %v, %q", err, out.String())
	}
}

func TestInternalCommandsHidden(t *testing.T) {
	cmd := root()
	var out bytes.Buffer
	cmd.SetArgs([]string{"--help"})
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{"fetch", "completion", "Available Commands"} {
		if strings.Contains(out.String(), hidden) {
			t.Errorf("l4m-node --help shows %q:\n%s", hidden, out.String())
		}
	}
	sub, _, err := cmd.Find([]string{"fetch"})
	if err != nil || sub.Name() != "fetch" || !sub.Hidden {
		t.Errorf("fetch: %v, %v", sub, err)
	}
}
