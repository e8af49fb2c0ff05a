package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

// newJoinedCommand is the unit's ExecCondition (the package installs and
// starts l4m-node before anyone has joined it to a server): it exits 0 when
// the config names a server and holds a token (or a join token for the
// first start to spend), so the agent starts; 1, so
// systemd skips the start without calling it a failure, while the config
// is the package's commented-out template or missing. A config that does
// not parse exits 0 too: the agent's start then fails naming the mistake,
// where an admin looks.
func newJoinedCommand() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:    "check-joined",
		Short:  "Exit 0 when --config is joined to a server (the unit's ExecCondition)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadNodeFile(config)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(os.Stderr, "l4m-node: %s is missing: run `l4m-node join` first\n", config)
				os.Exit(1)
			case err != nil:
				return nil // the agent says what is wrong
			case f.Server == "":
				fmt.Fprintf(os.Stderr, "l4m-node: %s names no server yet: run `l4m-node join https://SERVER:6443 --token TOKEN --ca-hash sha256:HASH`\n", config)
				os.Exit(1)
			case f.Token == "" && f.JoinToken == "" && os.Getenv("L4M_JOIN_TOKEN") == "":
				fmt.Fprintf(os.Stderr, "l4m-node: %s names a server but no token or joinToken: run `l4m-node join`\n", config)
				os.Exit(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "/etc/left4me/node.yaml", "the node's config file")
	return cmd
}
