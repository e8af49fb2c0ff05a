package app

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
)

func (c *cli) newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show this l4mctl config in other tools' formats",
		Args:  cobra.NoArgs,
	}
	var name string
	kc := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a kubeconfig for kubectl with this config's server, CA, token and namespace",
		Long: `Print a kubeconfig with the server, CA, token and namespace l4mctl uses, so
that kubectl speaks to left4me as you:

  l4mctl config kubeconfig > left4me.kubeconfig
  KUBECONFIG=left4me.kubeconfig kubectl get instances -o wide

It holds your token: keep it as private as the l4mctl config (write it 0600).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			data, err := kubeconfig(cfg, name)
			if err != nil {
				return err
			}
			_, err = c.streams.Out.Write(data)
			return err
		},
	}
	kc.Flags().StringVar(&name, "name", "left4me", "name of the cluster, user and context in the kubeconfig")
	cmd.AddCommand(kc)
	return cmd
}

// kubeconfig renders cfg as a kubeconfig (clientcmd's v1 Config) of one
// cluster, user and context, all called name.
func kubeconfig(cfg *client.File, name string) ([]byte, error) {
	cluster := map[string]any{"server": cfg.Server}
	switch {
	case cfg.CertificateAuthorityData != "":
		cluster["certificate-authority-data"] = base64.StdEncoding.EncodeToString([]byte(cfg.CertificateAuthorityData))
	case cfg.CertificateAuthority != "":
		// kubectl reads a relative path from where the kubeconfig is.
		ca, err := filepath.Abs(cfg.CertificateAuthority)
		if err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		if _, err := os.Stat(ca); err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		cluster["certificate-authority"] = ca
	}
	user := map[string]any{}
	if cfg.Token != "" {
		user["token"] = cfg.Token
	}
	ctx := map[string]any{"cluster": name, "user": name}
	if cfg.Namespace != "" {
		ctx["namespace"] = cfg.Namespace
	}
	return yaml.Marshal(map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []any{map[string]any{"name": name, "cluster": cluster}},
		"users":           []any{map[string]any{"name": name, "user": user}},
		"contexts":        []any{map[string]any{"name": name, "context": ctx}},
		"current-context": name,
	})
}
