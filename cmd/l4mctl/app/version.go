package app

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/version"
)

func (c *cli) newVersionCommand() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the server's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			fmt.Fprintf(c.streams.Out, "Client Version: %s (%s, %s)\n", v.Version, v.GoVersion, v.Platform)
			if clientOnly {
				return nil
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			sv, err := cl.Version(ctx)
			if err != nil {
				return fmt.Errorf("server version: %w", err)
			}
			fmt.Fprintf(c.streams.Out, "Server Version: %s (%s, %s)\n", sv.Version, sv.GoVersion, sv.Platform)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the client's version")
	return cmd
}

func (c *cli) newAPIResourcesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "api-resources",
		Short: "List the kinds this version knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(c.streams.Out, 3, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND")
			for _, r := range resources.All {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", r.Plural, strings.Join(r.ShortNames, ","), v1.APIVersion, r.Namespaced, r.Kind)
			}
			return tw.Flush()
		},
	}
}
