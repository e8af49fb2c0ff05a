package app

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newSnapshotCommand is `l4mctl snapshot save FILE`: what `l4m-server
// snapshot save` does, from an admin's workstation.
func (c *cli) newSnapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the server's embedded etcd (admins only)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of every object and token; restore it with l4m-server snapshot restore",
		Long: `save downloads a snapshot of the server's embedded etcd (GET /snapshot, admins only)
into FILE (mode 0600), which appears only whole and with etcd's checksum verified.
It does not hold the server's PKI or admin.yaml: back those up from its data dir.
It is not bounded by --request-timeout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			n, err := cl.SaveSnapshot(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(c.streams.Out, "saved %s (%d bytes)\n", args[0], n)
			return nil
		},
	})
	return cmd
}
