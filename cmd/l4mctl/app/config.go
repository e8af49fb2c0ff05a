package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Config is l4mctl's config file: where the API is and who we are.
//
//	server: http://127.0.0.1:6443
//	token: ...
//	namespace: default
type Config struct {
	Server    string `json:"server"`
	Token     string `json:"token,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// DefaultServer is where `make run` serves the API.
const DefaultServer = "http://127.0.0.1:6443"

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
func (c *cli) loadConfig() (*Config, error) {
	path, explicit := c.g.configPath, true
	if path == "" {
		path = os.Getenv("L4MCONFIG")
	}
	if path == "" {
		path, explicit = defaultConfigPath(), false
	}
	cfg := &Config{}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := yaml.UnmarshalStrict(data, cfg); err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
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
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	return cfg, nil
}
