package app

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (c *cli) newRCONCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rcon INSTANCE -- COMMAND...",
		Short: "Run one console command on a game server",
		Long: `Rcon runs one console command on the game through the API server, which asks
the node agent to send it over RCON on the node itself: the RCON password
never leaves the node. The words after -- are joined by spaces. It needs the
editor role in the namespace; the command is written to the audit log.`,
		Example: `  l4mctl rcon coop-1 -- status
  l4mctl rcon coop-1 -- changelevel c1m1_hotel`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: c.completeNames("instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			res, err := cl.RCON(ctx, c.ns(), args[0], strings.Join(args[1:], " "))
			if err != nil {
				return err
			}
			fmt.Fprint(c.streams.Out, res.Output)
			if res.Truncated {
				fmt.Fprintln(c.streams.Err, "l4mctl: the output was cut at 64 KiB")
			}
			return nil
		},
	}
}
