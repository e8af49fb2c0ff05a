// Command a2s-query asks a game server for A2S_INFO and A2S_PLAYER, the way
// the server browser does, and prints the answer.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/left4me/left4me/node/a2s"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: a2s-query HOST:PORT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, err := a2s.QueryInfo(ctx, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("name:    %s\nmap:     %s\nplayers: %d/%d\ngame:    %s (%s)\n", info.Name, info.Map, info.Players, info.MaxPlayers, info.Game, info.Version)
	if ps, err := a2s.QueryPlayers(ctx, os.Args[1]); err == nil {
		for _, p := range ps {
			fmt.Printf("  %-20s %5.0fs\n", p.Name, p.Duration)
		}
	}
}
