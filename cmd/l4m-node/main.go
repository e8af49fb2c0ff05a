// Command l4m-node is the left4me host agent. It will register its Node,
// watch the Instances bound to it and run them as systemd units; until the
// node agent lands it only reports its version.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/apis/version"
)

func main() {
	cmd := &cobra.Command{
		Use:   "l4m-node",
		Short: "The left4me host agent (not yet functional: prints its version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			fmt.Fprintf(cmd.OutOrStdout(), "l4m-node %s (%s, %s): the agent is not implemented yet\n", v.Version, v.GoVersion, v.Platform)
			return nil
		},
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
