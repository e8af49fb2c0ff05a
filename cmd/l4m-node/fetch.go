package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/cmd/internal/logging"
	"github.com/left4me/left4me/node/fetcher"
)

// addInternalCommands registers the subcommands the node runs itself,
// hidden: l4m-node's help still shows the agent alone (no completion or
// help commands appear for them).
func addInternalCommands(root *cobra.Command) {
	root.AddCommand(newFetchCommand())
	root.AddCommand(newJoinedCommand())
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetHelpCommand(&cobra.Command{Use: "no-help", Hidden: true})
}

// newFetchCommand is the hidden subcommand the node's fetcher
// units run, as the unprivileged l4m-fetch account (node/fetcher's
// Runner): it fetches one overlay source (an archive, a git tree, Workshop items) into a staging directory
// and reports on stdout; nothing of the agent runs in it.
func newFetchCommand() *cobra.Command {
	var spec, staging string
	var verbosity int
	cmd := &cobra.Command{
		Use:    fetcher.CommandName + " --staging DIR [--spec FILE]",
		Short:  "Fetch one overlay source into a staging directory (run by the node itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var in io.Reader = cmd.InOrStdin()
			if spec != "-" {
				f, err := os.Open(spec)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := logging.New(verbosity, false).WithName("fetch")
			return fetcher.RunCommand(ctx, in, staging, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec, "spec", "-", "the fetcher.Job as JSON: a file, or - for stdin")
	f.StringVar(&staging, "staging", "", "the staging directory: the tree lands in tree")
	f.IntVarP(&verbosity, "v", "v", 0, "log verbosity")
	cmd.MarkFlagRequired("staging")
	return cmd
}
