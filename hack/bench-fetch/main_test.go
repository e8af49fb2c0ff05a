package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestSmallRun runs the benchmark on a 4 MB archive once, so it keeps
// working; `make bench-fetch` runs the 500 MB one.
func TestSmallRun(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	var out bytes.Buffer
	if err := run(options{sizeMB: 4, runs: 1, dir: t.TempDir()}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node/fetcher FetchArchive", "curl | tar -xz", "sha256sum -c", "vs curl | tar"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}
