// Command a2s-query asks a game server for A2S_INFO and A2S_PLAYER, the way
// the server browser does, and prints the answer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/left4me/left4me/node/a2s"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args like any Go command (so -h and --help print the usage
// rather than being taken for an address) and returns the exit code: 0,
// 1 when the server does not answer, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("a2s-query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the server's answers")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: a2s-query [-timeout 3s] HOST:PORT")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	addr := fs.Arg(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	info, err := a2s.QueryInfo(ctx, addr)
	if err != nil {
		fmt.Fprintln(stderr, "a2s-query:", err)
		return 1
	}
	fmt.Fprintf(stdout, "name:    %s\nmap:     %s\nplayers: %d/%d\ngame:    %s (%s)\n", info.Name, info.Map, info.Players, info.MaxPlayers, info.Game, info.Version)
	if ps, err := a2s.QueryPlayers(ctx, addr); err == nil {
		for _, p := range ps {
			fmt.Fprintf(stdout, "  %-20s %5.0fs\n", p.Name, p.Duration)
		}
	}
	return 0
}
