package app

import (
	"io"

	"github.com/spf13/cobra"
)

func (c *cli) newLogsCommand() *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs INSTANCE",
		Short: "Print a game server's log (its unit's journal on its node)",
		Long: `Logs reads the game unit's journal through the API server, which asks the
node agent for it, as kubectl logs reads through the kubelet. Nobody needs SSH.`,
		Example: `  l4mctl logs coop-1 --tail 50
  l4mctl logs coop-1 -f`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !follow {
				var cancel func()
				ctx, cancel = c.requestContext(ctx)
				defer cancel()
			}
			rc, err := cl.Logs(ctx, c.ns(), args[0], follow, tail)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(c.streams.Out, rc)
			if ctx.Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&tail, "tail", -1, "only the last N lines; -1 for all of them")
	return cmd
}
