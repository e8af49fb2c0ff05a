package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/node/systemd"
)

// NodeUnit is the unit l4m-node runs as (config/systemd/l4m-node.service),
// which join enables and starts.
const NodeUnit = "l4m-node.service"

// joinTimeout bounds each network step of a join: the CA's discovery and
// the token exchange.
const joinTimeout = 30 * time.Second

// unitStarter is what join asks of systemd once node.yaml is written:
// enable the unit and (re)start it. Tests fake it; the real one talks
// D-Bus.
type unitStarter interface {
	EnableAndStart(ctx context.Context, unit string) error
}

// systemdStarter is unitStarter over D-Bus (no systemctl): a reload first,
// for a unit file a package has just installed; a restart, not a start, so
// that a unit already running (waiting for its config, or joined before,
// with --force) reads the new node.yaml.
type systemdStarter struct{}

func (systemdStarter) EnableAndStart(ctx context.Context, unit string) error {
	d, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Reload(ctx); err != nil {
		return err
	}
	if err := d.Enable(ctx, unit); err != nil {
		return err
	}
	return d.Restart(ctx, unit)
}

// joinOptions are `l4m-node join`'s flags.
type joinOptions struct {
	config       string
	token        string
	caHash       string
	unsafeSkipCA bool
	force        bool
	noStart      bool
	// The host's settings written under node: (those given).
	nodeName  string
	address   string
	root      string
	portRange string
	labels    []string
	capInst   int32
	capMem    string
}

// caHashHowTo is said when a join has no hash to check the server by.
const caHashHowTo = `without the CA's hash, this first contact with the server could be intercepted.
Get the hash where l4mctl has an admin's config:
  l4mctl config ca-hash
(l4mctl token create join prints the whole l4m-node join command), or on the server:
  openssl x509 -in /var/lib/left4me/server/pki/ca.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
and pass it as --ca-hash sha256:<hash>. --unsafe-skip-ca-verification trusts whatever CA answers`

func newJoinCommand(starter unitStarter) *cobra.Command {
	o := &joinOptions{}
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "join SERVER --token JOINTOKEN --ca-hash sha256:HASH",
		Short: "Join this host to a left4me cluster: write node.yaml and start l4m-node",
		Long: `join makes this host a node: it takes the API server's CA from the server itself,
checked against --ca-hash (the SHA-256 of the CA's public key, as kubeadm join's
--discovery-token-ca-cert-hash), so that no one between this host and the server
can stand in for it; exchanges the join token for this node's own token; writes
--config (mode 0600) with the server, the token, the CA and the host settings
given; and enables and (re)starts l4m-node.service (--no-start: not).

SERVER is the API server's https URL (several, comma-separated, for l4m-servers
sharing one etcd). l4mctl token create join prints the whole command.`,
		Example: `  l4m-node join https://api.example.org:6443 --token l4m.abc.xyz \
    --ca-hash sha256:3f1c...e9 --node-name host-1 --address 203.0.113.10 --labels region=eu`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runJoin(ctx, o, cmd, args[0], starter)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "/etc/left4me/node.yaml", "the node config to write (mode 0600; its directory is created 0700)")
	f.StringVar(&o.token, "token", "", "join token, from l4mctl token create join (default $L4M_JOIN_TOKEN, which keeps it off the command line)")
	f.StringVar(&o.caHash, "ca-hash", "", "sha256:<64 hex digits>, the hash of the API server's CA public key (l4mctl config ca-hash)")
	f.BoolVar(&o.unsafeSkipCA, "unsafe-skip-ca-verification", false, "join without --ca-hash, trusting whatever CA the server presents (anyone in between could)")
	f.BoolVar(&o.force, "force", false, "join again although --config holds a node token already (it is replaced; revoke the old one with l4mctl token revoke)")
	f.BoolVar(&o.noStart, "no-start", false, "write --config, but do not enable or start "+NodeUnit)
	f.StringVar(&o.nodeName, "node-name", host, "this node's name (its token is bound to it)")
	f.StringVar(&o.address, "address", "", "the address players use to reach this node (node.address)")
	f.StringVar(&o.root, "root", "", "LEFT4ME_ROOT (node.root; default /var/lib/left4me)")
	f.StringVar(&o.portRange, "port-range", "", "game ports this node hands out, MIN-MAX (node.portRange; default 27015-27115)")
	f.StringSliceVar(&o.labels, "labels", nil, "node labels, key=value (repeatable; node.labels)")
	f.Int32Var(&o.capInst, "capacity-instances", 0, "most Instances the scheduler places here (node.capacity.instances; 0: no limit)")
	f.StringVar(&o.capMem, "capacity-memory", "", "memory the scheduler may reserve here, e.g. 48Gi (node.capacity.memory)")
	return cmd
}

func runJoin(ctx context.Context, o *joinOptions, cmd *cobra.Command, server string, starter unitStarter) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	flags := cmd.Flags()
	if o.token == "" {
		o.token = os.Getenv("L4M_JOIN_TOKEN")
	}
	if o.token == "" {
		return errors.New("--token is missing: a join token from l4mctl token create join")
	}
	pin := ""
	switch {
	case o.caHash != "" && o.unsafeSkipCA:
		return errors.New("--ca-hash and --unsafe-skip-ca-verification exclude each other")
	case o.caHash != "":
		var err error
		if pin, err = pki.ParseCAHash(o.caHash); err != nil {
			return fmt.Errorf("--ca-hash: %w", err)
		}
	case !o.unsafeSkipCA:
		return errors.New("no --ca-hash: " + caHashHowTo)
	}

	nf, err := existingNodeFile(o.config, o.force)
	if err != nil {
		return err
	}
	if nf.Node == nil {
		nf.Node = &nodeSettings{}
	}
	if err := o.settings(nf.Node, flags); err != nil {
		return err
	}
	if err := checkWritable(o.config); err != nil {
		return err
	}

	// Everything this host can check is checked: now the server.
	nf.Server, nf.Token, nf.JoinToken, nf.CAHash = server, "", "", ""
	nf.CertificateAuthority, nf.CertificateAuthorityData = "", ""
	tr := caTrust{pin: pin, source: "--ca-hash", unsafe: o.unsafeSkipCA, warn: errOut}
	if err := bootstrap(ctx, nf, o.token, nf.Node.Name, tr); err != nil {
		return err
	}
	if err := writeNodeFile(o.config, nf); err != nil {
		return fmt.Errorf("joined as %s, but %w; the node token was not saved: revoke it (l4mctl token list, l4mctl token revoke) and join again with a new join token", nf.Node.Name, err)
	}
	fmt.Fprintf(out, "joined %s as node %s; wrote %s\n", server, nf.Node.Name, o.config)
	if o.noStart {
		fmt.Fprintf(out, "not started (--no-start): systemctl enable --now %s\n", NodeUnit)
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := starter.EnableAndStart(sctx, NodeUnit); err != nil {
		return fmt.Errorf("%s is written, but starting the agent failed: %w (systemctl enable --now %s)", o.config, err, NodeUnit)
	}
	fmt.Fprintf(out, "enabled and started %s (journalctl -u %s -f)\n", NodeUnit, NodeUnit)
	return nil
}

// settings writes the host settings given as flags into s; the node's name
// is always written, since its token is bound to it (a later change of
// host name must not rename the node). What is not given keeps the file's
// value (or the agent's default).
func (o *joinOptions) settings(s *nodeSettings, flags interface{ Changed(string) bool }) error {
	if flags.Changed("node-name") || s.Name == "" {
		s.Name = o.nodeName
	}
	if s.Name == "" {
		return errors.New("--node-name: this host has no host name to default to; name the node")
	}
	if flags.Changed("address") {
		s.Address = o.address
	}
	if flags.Changed("root") {
		if err := checkRoot(o.root); err != nil {
			return err
		}
		s.Root = o.root
	}
	if flags.Changed("port-range") {
		if _, _, err := parsePortRange(o.portRange); err != nil {
			return err
		}
		s.PortRange = o.portRange
	}
	if flags.Changed("labels") {
		labels, err := parseLabels(o.labels)
		if err != nil {
			return err
		}
		s.Labels = labels
	}
	if flags.Changed("capacity-instances") {
		if o.capInst < 0 {
			return fmt.Errorf("--capacity-instances %d: must not be negative", o.capInst)
		}
		s.Capacity.Instances = o.capInst
	}
	if flags.Changed("capacity-memory") {
		if _, err := parseMemory(o.capMem); err != nil {
			return err
		}
		s.Capacity.Memory = o.capMem
	}
	return nil
}

// existingNodeFile is the config join starts from: its node: settings are
// kept (a flag given wins). One that holds a node token is this host
// joined already, replaced only with force; one that does not parse is
// not guessed at.
func existingNodeFile(path string, force bool) (*nodeFile, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &nodeFile{}, nil
	}
	nf, err := loadNodeFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: fix or remove it before joining", err)
	}
	if nf.Token != "" && !force {
		name := "this host"
		if nf.Node != nil && nf.Node.Name != "" {
			name = "node " + nf.Node.Name
		}
		return nil, fmt.Errorf("%s holds a node token already (%s of %s): --force to join again and replace it", path, name, nf.Server)
	}
	return nf, nil
}

// caTrust is how a first contact trusts the server: by a pin, or (unsafe)
// by what it presents.
type caTrust struct {
	pin string
	// source names where the pin came from, for the refusal.
	source string
	unsafe bool
	// warn is told about an unpinned CA.
	warn io.Writer
}

// bootstrap is a node's first contact with the API server. Unless nf names
// a CA already, it takes the CA from the server as tr says (DiscoverCA)
// and puts it in nf; then it exchanges joinToken for this node's token,
// over TLS verified against that CA, and puts it in nf, dropping the spent
// joinToken and caHash. It writes nothing: a refused CA has cost nothing,
// neither the join token nor the file.
func bootstrap(ctx context.Context, nf *nodeFile, joinToken, nodeName string, tr caTrust) error {
	if nf.CertificateAuthority == "" && nf.CertificateAuthorityData == "" && (tr.pin != "" || tr.unsafe) {
		ca, err := discoverCA(ctx, nf.Server, tr)
		if err != nil {
			return err
		}
		nf.CertificateAuthorityData = string(pki.EncodeCertPEM(ca))
	}
	cfg, err := nf.Config()
	if err != nil {
		return err
	}
	cfg.Token = joinToken
	cl, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	created, err := cl.Create(ctx, resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "join"}, Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: nodeName}}, false)
	if err != nil {
		return fmt.Errorf("join as %s: %w", nodeName, err)
	}
	nf.Token, nf.JoinToken, nf.CAHash = created.(*v1.Token).Status.Token, "", ""
	return nil
}

// discoverCA runs DiscoverCA against each server in turn until one
// answers; one that answers but fails the pin ends the join (the others
// would share its CA).
func discoverCA(ctx context.Context, servers string, tr caTrust) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	var unreachable []error
	for _, s := range strings.Split(servers, ",") {
		s = strings.TrimSpace(s)
		ca, err := pki.DiscoverCA(ctx, s, tr.pin)
		var mm *pki.CAMismatchError
		switch {
		case err == nil:
			if tr.unsafe {
				fmt.Fprintf(tr.warn, "WARNING: --unsafe-skip-ca-verification: trusting the CA %s that %s presented, unchecked: anyone between this host and the server could have presented theirs. Compare it with l4mctl config ca-hash.\n", pki.CAHash(ca), s)
			}
			return ca, nil
		case errors.As(err, &mm):
			return nil, fmt.Errorf("%s: the server's CA is %s, not the %s given by %s: refusing to join (a mistyped hash, another server at this address, or someone in between)", s, mm.Presented, mm.Pinned, tr.source)
		case errors.Is(err, pki.ErrNotTrusted):
			return nil, fmt.Errorf("%w: refusing to join", err)
		}
		unreachable = append(unreachable, err)
	}
	return nil, errors.Join(unreachable...)
}

// joinFromFile is a first start without a token: the join token comes
// from --join-token or the file's joinToken, the CA from the file or, with
// caHash, from the server pinned by it. The file is then written with the
// node's token (and the CA) in place of the join token; nothing else of it
// changes (the name stays --node-name's or node.name's, as given).
func joinFromFile(nf *nodeFile, o *options) error {
	joinToken := o.joinToken
	if joinToken == "" {
		joinToken = nf.JoinToken
	}
	if joinToken == "" {
		return fmt.Errorf("%s holds no token: join this host with l4m-node join (l4mctl token create join prints the command), or give joinToken and caHash in it, or pass --join-token", o.config)
	}
	if err := checkWritable(o.config); err != nil {
		return err
	}
	tr := caTrust{pin: nf.CAHash, source: "caHash in " + o.config}
	if err := bootstrap(context.Background(), nf, joinToken, o.nodeName, tr); err != nil {
		return err
	}
	if err := writeNodeFile(o.config, nf); err != nil {
		return fmt.Errorf("save the node token: %w", err)
	}
	return nil
}

// checkWritable makes sure the config can be written before a join token
// is spent on it: its directory (created 0700 when missing) takes a file.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".node.yaml.*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeNodeFile writes node.yaml whole or not at all: a 0600 temp file
// beside it, synced, renamed over it. The directory is created 0700 when
// missing (an existing one keeps its mode).
func writeNodeFile(path string, nf *nodeFile) error {
	data, err := yaml.Marshal(nf)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".node.yaml.*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
