// Command l4m-node is the left4me host agent: it registers its Node,
// watches the Instances bound to it, and runs them as hardened systemd
// units over overlayfs. It runs as root, itself a systemd service.
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/version"
	"github.com/left4me/left4me/cmd/internal/logging"
	"github.com/left4me/left4me/node/agent"
	"github.com/left4me/left4me/node/fetcher"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/hostmount"
	"github.com/left4me/left4me/node/sources"
	"github.com/left4me/left4me/node/steamcmd"
	"github.com/left4me/left4me/node/systemd"
	"github.com/left4me/left4me/node/workshop"
)

type options struct {
	// cpuProfile, when set, is where a CPU profile of the whole run is
	// written (at a clean stop), to see where a node's time goes.
	cpuProfile string
	config     string
	nodeName   string
	root       string
	portRange  string
	gameUIDs   string
	labels     []string
	address    string
	logs       string
	metrics    string
	joinToken  string
	driver     string
	maxInst    int32
	maxMem     string
	heartbeat  time.Duration
	// statusReport is how long the Node's status goes unwritten at most
	// while nothing in it changes (the Lease is the heartbeat).
	statusReport   time.Duration
	workers        int
	parallelStarts int
	verbosity      int
	jsonLogs       bool
	// steamcmd installs the Installations' builds.
	steamcmdPath    string
	steamcmdTimeout time.Duration
	steamcmdTwoPass bool
	// overlayFileRoots are where file:// overlay URLs may read below.
	overlayFileRoots []string
	// steamAPIURL is the Steam Web API the Workshop is fetched through.
	steamAPIURL string
}

func main() {
	o := &options{}
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "l4m-node",
		Short: "The left4me host agent",
		Long: `l4m-node runs on every game host as root. It reads the API server's URL, CA
and its node token from --config (the l4mctl config format), registers its
Node, and realizes the Instances bound to it as systemd units.

A new host joins with l4m-node join (l4mctl token create join prints the
command): it writes --config and starts the l4m-node unit.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := loadNodeFile(o.config)
			if err != nil {
				return err
			}
			if err := file.Node.applyTo(o, cmd.Flags()); err != nil {
				return fmt.Errorf("config %s: %w", o.config, err)
			}
			return run(o, file)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "/etc/left4me/node.yaml", "API server URL, CA and node token (l4mctl config format)")
	f.StringVar(&o.nodeName, "node-name", host, "this node's name")
	f.StringVar(&o.root, "root", envOr("LEFT4ME_ROOT", "/var/lib/left4me"), "LEFT4ME_ROOT: installation/, overlays/, instances/, runtime/")
	f.StringVar(&o.portRange, "port-range", "27015-27115", "game ports this node hands out")
	f.StringVar(&o.gameUIDs, "game-uids", fmt.Sprintf("%d-%d", gameuser.DefaultMin, gameuser.DefaultMax), "uids (and gids) for the games' accounts, one per Instance; no other account may use them")
	f.StringSliceVar(&o.labels, "labels", nil, "node labels, key=value (repeatable)")
	f.StringVar(&o.address, "address", "127.0.0.1", "the address players use to reach this node")
	f.StringVar(&o.joinToken, "join-token", os.Getenv("L4M_JOIN_TOKEN"), "join token (l4mctl token create join): when --config holds no token, obtain this node's token with it and save it there (the CA from --config, or pinned by its caHash; l4m-node join does it all)")
	f.StringVar(&o.driver, "mount-driver", "overlayfs", "overlay mounts: overlayfs (the kernel's) or fuse-overlayfs")
	f.StringVar(&o.logs, "logs-listen", ":6444", "where the log server (for `l4mctl logs`, through the API server) listens; empty: none")
	f.StringVar(&o.metrics, "metrics-bind-address", "127.0.0.1:9740", "where Prometheus metrics are served over plain HTTP at /metrics; \"\" or \"0\": not served")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", 10*time.Second, "how often the node renews its Lease, saying it is alive (keep it well under l4m-server's --node-grace-period)")
	f.DurationVar(&o.statusReport, "status-report-interval", agent.DefaultStatusReport, "how long the Node's status goes unwritten at most while nothing it reports changes (a change is written at once)")
	f.IntVar(&o.workers, "workers", agent.DefaultWorkers, "Instances realized at once")
	f.IntVar(&o.parallelStarts, "max-parallel-starts", agent.DefaultParallelStarts, "games that may be starting at once, from their overlay's mount to their unit active (each start copies the others' mounts)")
	f.Int32Var(&o.maxInst, "capacity-instances", 0, "most Instances the scheduler places here (0: no limit)")
	f.StringVar(&o.maxMem, "capacity-memory", "", "memory the scheduler may reserve here for games' MemoryMax, e.g. 48Gi (empty: no limit)")
	f.StringVar(&o.steamcmdPath, "steamcmd", "", "steamcmd.sh, which installs and updates the game for Installations (default <root>/steamcmd/steamcmd.sh; its directory must be the l4m-steamcmd account's, which the node arranges when it lies inside --root)")
	f.DurationVar(&o.steamcmdTimeout, "steamcmd-timeout", steamcmd.DefaultTimeout, "a download that takes longer is killed (and retried later)")
	f.BoolVar(&o.steamcmdTwoPass, "steamcmd-two-pass", true, "install with a windows pass, then a linux one: Steam refuses a one-pass anonymous Linux install (\"Invalid platform\")")
	f.StringSliceVar(&o.overlayFileRoots, "overlay-file-roots", nil, "directories below which file:// archive and git URLs of Overlays may be read (repeatable; default none: a tenant could otherwise copy any file the fetcher account can read into a game)")
	f.StringVar(&o.steamAPIURL, "steam-api-url", workshop.DefaultBaseURL, "the Steam Web API that Workshop Overlays are resolved and downloaded through")
	f.IntVarP(&o.verbosity, "v", "v", 0, "log verbosity")
	f.BoolVar(&o.jsonLogs, "json-logs", false, "log JSON lines")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file when the node stops (for `go tool pprof`)")
	cmd.AddCommand(newJoinCommand(systemdStarter{}))
	addInternalCommands(cmd)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "l4m-node:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(o *options, nf *nodeFile) error {
	log := logging.New(o.verbosity, o.jsonLogs).WithValues("node", o.nodeName)
	f := &nf.File
	if f.Token == "" {
		if err := joinFromFile(nf, o); err != nil {
			return err
		}
		log.Info("joined: obtained this node's token and saved it", "config", o.config)
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	cl, err := client.New(cfg)
	if err != nil {
		return err
	}
	min, max, err := parsePortRange(o.portRange)
	if err != nil {
		return err
	}
	ulo, uhi, ok := strings.Cut(o.gameUIDs, "-")
	uidMin, err1 := strconv.Atoi(ulo)
	uidMax, err2 := strconv.Atoi(uhi)
	if !ok || err1 != nil || err2 != nil || uidMin < 1000 || uidMax >= 1<<31 || uidMin > uidMax {
		return fmt.Errorf("--game-uids %q: want MIN-MAX within 1000-2147483647", o.gameUIDs)
	}
	if o.heartbeat < time.Second {
		return fmt.Errorf("--heartbeat-interval %s: at least 1s", o.heartbeat)
	}
	if o.statusReport < o.heartbeat {
		return fmt.Errorf("--status-report-interval %s: at least --heartbeat-interval (%s)", o.statusReport, o.heartbeat)
	}
	if o.driver != "overlayfs" && o.driver != "fuse-overlayfs" {
		return fmt.Errorf("--mount-driver %q: overlayfs or fuse-overlayfs", o.driver)
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
	}
	capacity := v1.NodeCapacity{Instances: o.maxInst}
	if o.maxInst < 0 {
		return fmt.Errorf("--capacity-instances %d: must not be negative", o.maxInst)
	}
	if capacity.Memory, err = parseMemory(o.maxMem); err != nil {
		return err
	}
	if err := checkRoot(o.root); err != nil {
		return err
	}
	sc := steamcmd.DefaultConfig(o.root)
	sc.Path, sc.Timeout, sc.TwoPass = o.steamcmdPath, o.steamcmdTimeout, o.steamcmdTwoPass
	if err := checkSteamcmdPath(sc.Path); err != nil {
		return err
	}
	if sc.Timeout <= 0 {
		return fmt.Errorf("--steamcmd-timeout (node.steamcmd.timeout) %s: want a positive duration", sc.Timeout)
	}
	if err := checkFileRoots(o.overlayFileRoots); err != nil {
		return err
	}
	if err := checkSteamAPIURL(o.steamAPIURL); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sd, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	sd.Log = log.WithName("systemd")
	defer sd.Close()
	accounts := &gameuser.System{Min: uidMin, Max: uidMax}
	// A missing steamcmd is no reason not to start: games on builds already
	// here keep running, and each Installation's status says what is wrong.
	steam, err := steamcmd.New(sc, sd, accounts, log.WithName("steamcmd"))
	if err != nil {
		return err
	}
	steamcmdDir := ""
	if sc.Path != "" {
		// steamcmd.sh may be a link to the real one (resolved as steamcmd
		// itself is run); its directory holds linux32/.
		real, err := filepath.EvalSymlinks(sc.Path)
		if err != nil {
			real = sc.Path
		}
		steamcmdDir = filepath.Dir(real)
	}
	fetch, err := fetcher.New(fetcher.Config{Root: o.root}, sd, accounts, log.WithName("fetcher"))
	if err != nil {
		return err
	}
	if err := fetch.StopLeftovers(ctx); err != nil {
		// The store may then fail to open (StoreUnavailable names why);
		// path overlays and running games go on.
		log.Error(err, "cannot stop the fetcher units an earlier run left")
	}
	materializers := sources.Materializers(sources.Config{
		Fetcher:     fetch,
		Download:    fetcher.Limits{FileRoots: o.overlayFileRoots},
		SteamAPIURL: o.steamAPIURL,
	})
	log.Info("starting", "version", version.Get().Version, "root", o.root, "ports", o.portRange)
	return agent.New(agent.Options{
		Client: cl, NodeName: o.nodeName, Root: o.root, PortMin: int32(min), PortMax: int32(max), Capacity: capacity, Heartbeat: o.heartbeat, StatusReport: o.statusReport, Workers: o.workers, ParallelStarts: o.parallelStarts,
		Labels: labels, Systemd: sd, Log: log, Address: o.address, LogsListen: o.logs, MetricsListen: metricsListen(o.metrics), CAPEM: cfg.CAData, MountDriver: o.driver,
		Accounts: accounts, HostMounts: hostmount.Host{}, Steamcmd: steam, SteamcmdDir: steamcmdDir, Materializers: materializers,
	}).Run(ctx)
}

// metricsListen is --metrics-bind-address as the agent takes it: "0"
// disables it, as for the kubelet and controller-runtime.
func metricsListen(addr string) string {
	if addr == "0" {
		return ""
	}
	return addr
}

// parsePortRange reads --port-range: fewer than 1000 ports, since a
// game's client port is its game port + 1000.
func parsePortRange(s string) (min, max int, err error) {
	lo, hi, ok := strings.Cut(s, "-")
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || min < 1024 || max > 65535-1000 || min > max {
		return 0, 0, fmt.Errorf("--port-range %q: want MIN-MAX within 1024-64535", s)
	}
	return min, max, nil
}

// parseLabels reads --labels key=value; the node-restriction ones are an
// admin's, which the API server would refuse anyway: say so before.
func parseLabels(list []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("--labels %q: want key=value", l)
		}
		if v1.IsNodeRestrictionLabel(k) {
			return nil, fmt.Errorf("--labels %q: %s/ labels are an admin's to set on the Node; a node cannot give them to itself", l, v1.NodeRestrictionLabelDomain)
		}
		labels[k] = v
	}
	return labels, nil
}

// parseMemory reads --capacity-memory ("": no limit).
func parseMemory(s string) (*resource.Quantity, error) {
	if s == "" {
		return nil, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return nil, fmt.Errorf("--capacity-memory %q: want a positive quantity such as 48Gi", s)
	}
	return &q, nil
}

func checkRoot(root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("--root (node.root) %q: want an absolute path", root)
	}
	return nil
}

// checkFileRoots wants absolute, clean directories: a file:// URL is
// checked against them by prefix.
func checkFileRoots(roots []string) error {
	for _, r := range roots {
		if !filepath.IsAbs(r) || filepath.Clean(r) != r || r == "/" {
			return fmt.Errorf("--overlay-file-roots (node.overlayFileRoots) %q: want an absolute, clean directory other than /", r)
		}
	}
	return nil
}

// checkSteamAPIURL wants an http or https URL with a host and no query.
func checkSteamAPIURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--steam-api-url (node.steamAPIURL) %q: want an https URL such as %s", s, workshop.DefaultBaseURL)
	}
	return nil
}

// checkSteamcmdPath refuses a steamcmd the node's units cannot reach:
// l4m-node, the steamcmd jobs and the games all run with ProtectHome=yes,
// which hides /home, /root and /run/user (LinuxGSM's /home/steam is the
// usual place), so such a path would only ever fail as "missing".
func checkSteamcmdPath(path string) error {
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("--steamcmd (node.steamcmd.path) %q: want an absolute path", path)
	}
	clean := filepath.Clean(path)
	for _, hidden := range []string{"/home", "/root", "/run/user"} {
		if clean == hidden || strings.HasPrefix(clean, hidden+"/") {
			return fmt.Errorf("--steamcmd (node.steamcmd.path) %q: below %s, which ProtectHome=yes hides from l4m-node and from steamcmd's hardened unit; unpack steamcmd elsewhere (default: <root>/steamcmd)", path, hidden)
		}
	}
	return nil
}
