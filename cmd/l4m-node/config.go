package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/pki"
)

// nodeFile is /etc/left4me/node.yaml: how to reach the API server (the
// l4mctl config fields) and, under node:, this host's own settings. A flag
// given on the command line wins over the file.
//
//	server: https://api.example.org:6443
//	token: l4m.<id>.<secret>
//	certificateAuthorityData: |
//	  -----BEGIN CERTIFICATE-----
//	node:
//	  name: host-1
//	  portRange: 27015-27115
//	  labels: {region: eu}
//	  capacity: {instances: 20, memory: 48Gi}
//	  steamcmd: {path: /var/lib/left4me/steamcmd/steamcmd.sh, timeout: 1h, twoPass: true}
//	  overlayFileRoots: [/srv/left4me/archives]
//	  steamAPIURL: https://api.steampowered.com
//
// A host not joined yet may hold, instead of token and
// certificateAuthorityData, a join token and the CA's hash: its first
// start then joins the way `l4m-node join` does (the CA taken from the
// server and checked against caHash) and replaces both with what it
// obtained.
//
//	server: https://api.example.org:6443
//	joinToken: l4m.<id>.<secret>
//	caHash: sha256:<64 hex digits>
type nodeFile struct {
	client.File `json:",inline"`
	// JoinToken is spent on the first start, when the file holds no token.
	JoinToken string `json:"joinToken,omitempty"`
	// CAHash pins the CA the first start takes from the server (kubeadm's
	// --discovery-token-ca-cert-hash); only without a CA in the file.
	CAHash string        `json:"caHash,omitempty"`
	Node   *nodeSettings `json:"node,omitempty"`
}

type nodeSettings struct {
	Name        string            `json:"name,omitempty"`
	Root        string            `json:"root,omitempty"`
	PortRange   string            `json:"portRange,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Address     string            `json:"address,omitempty"`
	MountDriver string            `json:"mountDriver,omitempty"`
	LogsListen  *string           `json:"logsListen,omitempty"`
	// MetricsBindAddress is --metrics-bind-address ("" or "0": off).
	MetricsBindAddress *string `json:"metricsBindAddress,omitempty"`
	Steamcmd           struct {
		Path    string `json:"path,omitempty"`
		Timeout string `json:"timeout,omitempty"`
		TwoPass *bool  `json:"twoPass,omitempty"`
	} `json:"steamcmd,omitempty"`
	OverlayFileRoots []string `json:"overlayFileRoots,omitempty"`
	SteamAPIURL      string   `json:"steamAPIURL,omitempty"`
	Capacity         struct {
		Instances int32  `json:"instances,omitempty"`
		Memory    string `json:"memory,omitempty"`
	} `json:"capacity,omitempty"`
}

func loadNodeFile(path string) (*nodeFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f := &nodeFile{}
	if err := yaml.UnmarshalStrict(data, f); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if f.CAHash != "" {
		pin, err := pki.ParseCAHash(f.CAHash)
		if err != nil {
			return nil, fmt.Errorf("config file %s: caHash: %w", path, err)
		}
		if f.CertificateAuthority != "" || f.CertificateAuthorityData != "" {
			return nil, fmt.Errorf("config file %s: caHash pins the CA a first start takes from the server, but the file names its CA already (certificateAuthority or certificateAuthorityData): keep one of them", path)
		}
		f.CAHash = pin
	}
	return f, nil
}

// applyTo fills every option whose flag was not given from the file.
func (s *nodeSettings) applyTo(o *options, flags *pflag.FlagSet) error {
	if s == nil {
		return nil
	}
	set := func(flag string, apply func()) {
		if !flags.Changed(flag) {
			apply()
		}
	}
	if s.Name != "" {
		set("node-name", func() { o.nodeName = s.Name })
	}
	if s.Root != "" {
		set("root", func() { o.root = s.Root })
	}
	if s.PortRange != "" {
		set("port-range", func() { o.portRange = s.PortRange })
	}
	if s.Address != "" {
		set("address", func() { o.address = s.Address })
	}
	if s.MountDriver != "" {
		set("mount-driver", func() { o.driver = s.MountDriver })
	}
	if s.LogsListen != nil {
		set("logs-listen", func() { o.logs = *s.LogsListen })
	}
	if s.MetricsBindAddress != nil {
		set("metrics-bind-address", func() { o.metrics = *s.MetricsBindAddress })
	}
	if s.Steamcmd.Path != "" {
		set("steamcmd", func() { o.steamcmdPath = s.Steamcmd.Path })
	}
	if s.Steamcmd.Timeout != "" {
		d, err := time.ParseDuration(s.Steamcmd.Timeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("node.steamcmd.timeout %q: want a positive duration such as 1h", s.Steamcmd.Timeout)
		}
		set("steamcmd-timeout", func() { o.steamcmdTimeout = d })
	}
	if s.Steamcmd.TwoPass != nil {
		set("steamcmd-two-pass", func() { o.steamcmdTwoPass = *s.Steamcmd.TwoPass })
	}
	if len(s.OverlayFileRoots) > 0 {
		set("overlay-file-roots", func() { o.overlayFileRoots = s.OverlayFileRoots })
	}
	if s.SteamAPIURL != "" {
		set("steam-api-url", func() { o.steamAPIURL = s.SteamAPIURL })
	}
	if len(s.Labels) > 0 {
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		set("labels", func() {
			o.labels = nil
			for _, k := range keys {
				o.labels = append(o.labels, k+"="+s.Labels[k])
			}
		})
	}
	if s.Capacity.Instances < 0 {
		return fmt.Errorf("node.capacity.instances: %s must not be negative", strconv.Itoa(int(s.Capacity.Instances)))
	}
	if s.Capacity.Instances != 0 {
		set("capacity-instances", func() { o.maxInst = s.Capacity.Instances })
	}
	if s.Capacity.Memory != "" {
		set("capacity-memory", func() { o.maxMem = s.Capacity.Memory })
	}
	return nil
}
