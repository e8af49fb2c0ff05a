package app

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/pki"
)

func (c *cli) newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show this l4mctl config in other tools' formats, and its CA's hash",
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
	caHash := &cobra.Command{
		Use:   "ca-hash",
		Short: "Print the hash of this config's CA, which l4m-node join --ca-hash checks the server by",
		Long: `Print sha256:<hex>, the SHA-256 of the public key of the CA this config trusts
(kubeadm's --discovery-token-ca-cert-hash format). A joining host checks the
API server's CA against it, so that no one in between can stand in for the
server:

  l4m-node join https://api.example.org:6443 --token JOINTOKEN --ca-hash $(l4mctl config ca-hash)

(l4mctl token create join prints that whole command.)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			hash, err := configCAHash(cfg)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.streams.Out, hash)
			return err
		},
	}
	cmd.AddCommand(kc, caHash)
	return cmd
}

// configCAHash is the CAHash of the CA cfg trusts (the first certificate
// of its bundle: l4m-server's CA is one certificate).
func configCAHash(cfg *client.File) (string, error) {
	cc, err := cfg.Config()
	if err != nil {
		return "", err
	}
	if len(cc.CAData) == 0 {
		return "", fmt.Errorf("this config names no CA (certificateAuthority or certificateAuthorityData), so there is no CA hash: the server's certificate is checked against the system's roots")
	}
	hashes, err := pki.CAHashesPEM(cc.CAData)
	if err != nil {
		return "", fmt.Errorf("the config's CA: %w", err)
	}
	return hashes[0], nil
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
