package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRun runs the command in-process and returns the base URL it
// printed; it is stopped, and must exit cleanly, when the test ends.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	exited := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		exited <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-exited; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	if err != nil {
		t.Fatalf("no address printed: %v", err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	return base
}

func title(t *testing.T, base, id string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/ISteamRemoteStorage/GetPublishedFileDetails/v1/",
		url.Values{"itemcount": {"1"}, "publishedfileids[0]": {id}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Response struct {
			Details []struct {
				Title string `json:"title"`
			} `json:"publishedfiledetails"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || len(d.Response.Details) != 1 {
		t.Fatalf("answer: %v", err)
	}
	return d.Response.Details[0].Title
}

// The command serves its catalog file and follows changes to it; the
// address is printed and written to --addr-file.
func TestServesAndReloadsCatalog(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.json")
	addrFile := filepath.Join(dir, "addr")
	if err := os.WriteFile(cat, []byte(`{"items":[{"id":"1","title":"one"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	base := startRun(t, "--listen", "127.0.0.1:0", "--catalog", cat, "--addr-file", addrFile)
	if b, err := os.ReadFile(addrFile); err != nil || "http://"+strings.TrimSpace(string(b)) != base {
		t.Fatalf("addr file %q (%v), printed %s", b, err, base)
	}
	if got := title(t, base, "1"); got != "one" {
		t.Fatalf("title %q", got)
	}
	// A new size is a change even within the file system's timestamp
	// granularity.
	if err := os.WriteFile(cat, []byte(`{"items":[{"id":"1","title":"one, updated"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := title(t, base, "1"); got != "one, updated" {
		t.Fatalf("after the change: title %q", got)
	}
	// A broken catalog keeps the last good one.
	if err := os.WriteFile(cat, []byte(`{"items":[`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := title(t, base, "1"); got != "one, updated" {
		t.Fatalf("after a bad change: title %q", got)
	}
	resp, err := http.Get(base + steamapi.StatsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st steamapi.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Requests[steamapi.MethodDetails] != 3 {
		t.Fatalf("stats %+v (%v)", st, err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:0"},
		{"--listen", "localhost:0"},
		{"--listen", "127.0.0.1"},
		{"--catalog", "/nonexistent/catalog.json"},
		{"extra"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := run(ctx, args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: accepted", args)
		}
		cancel()
	}
	if _, err := parseFlags([]string{"--listen", "10.0.0.1:0", "--allow-non-loopback"}, io.Discard); err != nil {
		t.Errorf("--allow-non-loopback: %v", err)
	}
}
