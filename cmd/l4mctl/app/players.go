package app

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

func (c *cli) newPlayersCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "players INSTANCE",
		Short: "List who is playing on a game server now",
		Long: `Players asks the game, through its node's agent, who is on it: name, score and
time from A2S, SteamID and ping from RCON status. Nothing is stored; every call
asks again. Any role in the namespace may; players' addresses are never shown.`,
		Example: `  l4mctl players coop-1
  l4mctl players coop-1 -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeNames("instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output must be json or yaml, not %q", output)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			res, err := cl.Players(ctx, c.ns(), args[0])
			if err != nil {
				return err
			}
			if output != "" {
				return writeObject(c.streams.Out, res, output)
			}
			if res.Warning != "" {
				fmt.Fprintln(c.streams.Err, "l4mctl: warning:", res.Warning)
			}
			printPlayers(c.streams.Out, c.ns()+"/"+args[0], res)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// printPlayers writes a header line (map, count of max) and one row a
// player, or one sentence when nobody plays.
func printPlayers(out io.Writer, instance string, res v1.InstancePlayers) {
	if len(res.Players) == 0 {
		fmt.Fprintf(out, "No players on %s (map %s).\n", instance, res.Map)
		return
	}
	fmt.Fprintf(out, "%s: map %s, %d/%d players\n", instance, res.Map, len(res.Players), res.MaxPlayers)
	tw := tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTEAMID\tSCORE\tTIME\tPING")
	for _, p := range res.Players {
		steamID, ping := p.SteamID, strconv.Itoa(int(p.Ping))
		if p.Bot || p.SteamID == "" {
			ping = "-"
		}
		if steamID == "" {
			steamID = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", printable(p.Name), steamID, p.Score, p.PlayTime(), ping)
	}
	tw.Flush()
}

// printable is a player's name safe for a terminal: players choose their
// names, so a control or format character (an escape sequence, a tab that
// shifts the columns) is shown as U+FFFD instead of acted on.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return '\uFFFD'
		}
		return r
	}, s)
}
