package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/left4me/left4me/apis/client"
)

// DefaultServer is where `make run` serves the API.
const DefaultServer = "https://127.0.0.1:6443"

func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "left4me", "config.yaml")
}

func defaultConfigPathHint() string {
	if p := defaultConfigPath(); p != "" {
		return p
	}
	return "$XDG_CONFIG_HOME/left4me/config.yaml"
}

// loadConfig reads the config file (when there is one) and applies flags.
// A file named explicitly (flag or $L4MCONFIG) must exist.
func (c *cli) loadConfig() (*client.File, error) {
	path, explicit := c.g.configPath, true
	if path == "" {
		path = os.Getenv("L4MCONFIG")
	}
	if path == "" {
		path, explicit = defaultConfigPath(), false
	}
	cfg := &client.File{}
	if path != "" {
		f, err := client.LoadFile(path)
		switch {
		case err == nil:
			cfg = f
		case errors.Is(err, fs.ErrNotExist) && !explicit:
		default:
			return nil, fmt.Errorf("config file: %w", err)
		}
	}
	if c.g.server != "" {
		cfg.Server = c.g.server
	}
	if c.g.token != "" {
		cfg.Token = c.g.token
	}
	if c.g.caFile != "" {
		cfg.CertificateAuthority, cfg.CertificateAuthorityData = c.g.caFile, ""
	}
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	return cfg, nil
}
