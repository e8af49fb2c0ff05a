// Command srcds-double stands in for Left 4 Dead 2's srcds_run in tests and
// the demo: it takes the same arguments, binds the same ports, reads
// left4dead2/cfg/server.cfg from its working directory (the merged overlay
// tree, so what an overlay puts there shows), answers A2S_INFO, A2S_PLAYER
// and A2S_RULES with the challenge handshake, and speaks Source RCON. Extra
// RCON commands simulate players: l4m_join NAME, l4m_bot NAME (a bot) and
// l4m_leave NAME, NAME being the rest of the line as typed. It logs to stdout and exits cleanly on SIGINT, as srcds does.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	wd, _ := os.Getwd()
	if err := run(ctx, os.Args[1:], wd, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "srcds-double:", err)
		os.Exit(1)
	}
}
