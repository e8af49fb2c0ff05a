// Command steam-api-double stands in for the Steam Web API in tests and
// the demo, since Steam cannot be reached from them: it serves
// ISteamRemoteStorage/GetPublishedFileDetails and GetCollectionDetails
// (POST, form-encoded, answered as Steam answers) and the item files at
// the file_urls it hands out, on one plain-HTTP listener. Point a node at
// it with --steam-api-url.
//
//	steam-api-double --listen 127.0.0.1:0 --catalog catalog.json [--addr-file F] [--public-url URL]
//
// A catalog (package steamapi's Catalog, as JSON; ids are strings):
//
//	{"items": [
//	   {"id": "3001", "title": "Map One", "timeUpdated": 1700000000, "size": 70000},
//	   {"id": "3002", "contentFile": "two.vpk", "faults": [{"truncateAt": 1000, "times": 1}]},
//	   {"id": "3003", "consumerAppID": 730}, {"id": "3004", "missing": true}, {"id": "3005", "noFileURL": true}],
//	 "collections": [{"id": "121115793", "children": [{"id": "3001"}, {"id": "3002"}, {"id": "500", "fileType": 2}]}],
//	 "faults": {"GetPublishedFileDetails": [{"status": 429, "retryAfter": "1", "times": 1}]}}
//
// The catalog is read again when
// the file changes, so a test can update an item or add a fault by
// rewriting it; the counts in GET /_double/stats survive that. The first
// line on stdout is "listening on http://ADDR". It listens on loopback
// only unless --allow-non-loopback is given (a test network namespace's
// bridge, say): a double has no business on a real network. SIGINT and
// SIGTERM stop it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "steam-api-double:", err)
		os.Exit(1)
	}
}

type options struct {
	listen           string
	catalog          string
	addrFile         string
	publicURL        string
	allowNonLoopback bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("steam-api-double", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	fs.StringVar(&o.catalog, "catalog", "", "JSON file with the items, collections and faults (empty: an empty Steam)")
	fs.StringVar(&o.addrFile, "addr-file", "", "write the address listened on to this file once listening")
	fs.StringVar(&o.publicURL, "public-url", "", "base of the file_urls handed out (default: http:// and the request's Host)")
	fs.BoolVar(&o.allowNonLoopback, "allow-non-loopback", false, "allow a listen address that is not loopback")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return o, fmt.Errorf("--listen %q: %w", o.listen, err)
	}
	if ip := net.ParseIP(host); !o.allowNonLoopback && (ip == nil || !ip.IsLoopback()) {
		return o, fmt.Errorf("--listen %q: not a loopback IP address (see --allow-non-loopback)", o.listen)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	src := &catalogFile{path: o.catalog}
	cat, err := src.load()
	if err != nil {
		return err
	}
	srv := steamapi.New(cat)
	srv.PublicURL = o.publicURL
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	if o.addrFile != "" {
		if err := os.WriteFile(o.addrFile, []byte(addr+"\n"), 0o644); err != nil {
			l.Close()
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", addr)
	hs := &http.Server{Handler: src.reloading(srv, stderr), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Trickling responses wait on their request's context, which Close
	// cancels, so this does not hang on a slow test.
	hs.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// catalogFile reloads the catalog when its file changes (size or
// modification time), checked at each request.
type catalogFile struct {
	path string
	mu   sync.Mutex
	seen os.FileInfo
}

func (c *catalogFile) load() (steamapi.Catalog, error) {
	if c.path == "" {
		return steamapi.Catalog{}, nil
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		return steamapi.Catalog{}, fmt.Errorf("--catalog: %w", err)
	}
	// Remembered even if the file does not parse, so a bad catalog is
	// reported once, not at every request.
	c.seen = fi
	return steamapi.LoadCatalog(c.path)
}

func (c *catalogFile) changed() bool {
	if c.path == "" {
		return false
	}
	fi, err := os.Stat(c.path)
	return err == nil && (c.seen == nil || fi.Size() != c.seen.Size() || !fi.ModTime().Equal(c.seen.ModTime()))
}

func (c *catalogFile) reloading(srv *steamapi.Server, stderr io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		if c.changed() {
			if cat, err := c.load(); err != nil {
				// Keep serving the last good catalog; a test that
				// wrote a bad one sees this on stderr.
				fmt.Fprintln(stderr, "steam-api-double: reload:", err)
			} else {
				srv.SetCatalog(cat)
			}
		}
		c.mu.Unlock()
		srv.ServeHTTP(w, r)
	})
}
