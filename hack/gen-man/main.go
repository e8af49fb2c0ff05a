// Command gen-man writes l4mctl's man pages (l4mctl.1, l4mctl-get.1, ...)
// from its cobra commands into a directory, for the l4mctl package (make
// deb). They are built, not committed: the commands are their source.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/left4me/left4me/cmd/l4mctl/app"
)

func main() {
	out := flag.String("out", "", "directory for the .1 files")
	version := flag.String("version", "dev", "the version the pages name")
	date := flag.String("date", "", "the date the pages carry, RFC 3339 (make deb passes the commit's, so a rebuild makes the same pages; default now)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gen-man: -out is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen-man:", err)
		os.Exit(1)
	}
	root := app.NewCommand(app.Streams{In: os.Stdin, Out: io.Discard, Err: io.Discard})
	root.DisableAutoGenTag = true // the same pages from the same source, whenever built
	header := &doc.GenManHeader{Title: "L4MCTL", Section: "1", Source: "left4me " + *version, Manual: "left4me"}
	if *date != "" {
		d, err := time.Parse(time.RFC3339, *date)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen-man: -date:", err)
			os.Exit(2)
		}
		header.Date = &d
	}
	if err := doc.GenManTree(root, header, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen-man:", err)
		os.Exit(1)
	}
}
