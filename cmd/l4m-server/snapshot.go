package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/server"
)

// defaultAdminConfig is the admin.yaml of the default --data-dir.
const defaultAdminConfig = "/var/lib/left4me/server/" + server.AdminConfigFile

// snapshotCommand is `l4m-server snapshot save|restore`: consistent
// backups of a running server's embedded etcd, and a new data dir from one.
func snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the embedded etcd of a running server, and restore it into a new data dir",
		Long: `A snapshot holds every object and token (as hashes) of a server on embedded etcd,
taken consistently while it runs. It does not hold the PKI or admin.yaml: back up
<data-dir>/pki/ and <data-dir>/admin.yaml beside it (they are root's secrets), and copy
them into the restored data dir to keep the CA that clients and nodes trust.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(snapshotSaveCommand(), snapshotRestoreCommand())
	return cmd
}

func snapshotSaveCommand() *cobra.Command {
	var configPath, serverURL, token string
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of a running server's etcd through its API (admins only)",
		Long: `save downloads a snapshot of the running server's embedded etcd through GET /snapshot,
with an admin's credentials: the admin.yaml the server wrote (--config, default
$L4MCONFIG or ` + defaultAdminConfig + `), or --server and --token. FILE (mode 0600)
appears only whole, with etcd's checksum verified.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := adminClient(configPath, serverURL, token)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := c.SaveSnapshot(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s (%d bytes)\n", args[0], n)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "an admin's l4mctl config (default $L4MCONFIG, else "+defaultAdminConfig+")")
	f.StringVar(&serverURL, "server", "", "API server URL (overrides the config's)")
	f.StringVar(&token, "token", "", "an admin bearer token (overrides the config's)")
	return cmd
}

func snapshotRestoreCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir NEW",
		Short: "Make a new data dir from a snapshot, for l4m-server --data-dir NEW",
		Long: `restore writes the etcd of a new data dir from a snapshot (what etcdutl snapshot restore
does), after checking its checksum. NEW must not exist or be empty. Then copy the
old <data-dir>/pki/ and admin.yaml into NEW before starting l4m-server --data-dir NEW,
to keep the CA that clients and nodes trust (without them the server makes a new CA
and a new admin.yaml); old tokens authenticate either way.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("--data-dir: name the new data dir to restore into")
			}
			if err := server.RestoreSnapshot(args[0], dataDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s; start it with l4m-server --data-dir %s\n", args[0], dataDir, dataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the new data dir (must not exist, or be empty)")
	return cmd
}

// adminClient reads the config file (an explicit one must exist) and
// applies --server and --token.
func adminClient(configPath, serverURL, token string) (*client.Client, error) {
	if configPath == "" {
		configPath = os.Getenv("L4MCONFIG")
	}
	if configPath == "" {
		configPath = defaultAdminConfig
	}
	f, err := client.LoadFile(configPath)
	if err != nil {
		if serverURL == "" || token == "" || !os.IsNotExist(err) {
			return nil, fmt.Errorf("admin config: %w", err)
		}
		f = &client.File{}
	}
	if serverURL != "" {
		f.Server = serverURL
	}
	if token != "" {
		f.Token = token
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}
