// Command bench-rcon measures an RCON round trip through the API against a
// direct one to the same game, side by side in one run, and prints a table.
//
// Everything is real but systemd and the game: an l4m-server (embedded
// etcd, HTTPS), a node agent (node/agent, with systemd.Fake standing in
// for systemd: it writes the game's unit, and this program starts the
// unit's ExecStart itself, with hack/srcds-double in place of srcds_run,
// in the Instance's generated layer (the mount's topmost lowerdir; no
// overlay is mounted), so the double reads the server.cfg and
// rcon_password the agent wrote). The agent's probe sees the game answer
// A2S and reports it Ready, as on a host.
//
// The paths measured, each -n times the command "status":
//
//   - api: apis/client.RCON as an editor (spread over rconUsers editors,
//     below the API's per-user RCON limit) → l4m-server (authenticate,
//     authorize, audit)
//     → the agent's pinned-TLS endpoint → a new RCON connection to the
//     game on loopback (dial, auth, exec), as the agent makes for each
//     command;
//   - direct, new connection: node/rcon Dial+Exec+Close to the same game
//     (the agent's own last leg, the limit of the api path). The srcds
//     double, as srcds, sends its auth result a server frame (1/tickrate,
//     33 ms at 30 tick) after the empty reply: that frame is most of it;
//   - direct, one connection: Exec on a connection kept open (the game's
//     own answer time).
//
// Run it with `make bench-rcon` (as root: the agent chowns the game's
// files).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/hack/internal/benchkit"
	"github.com/left4me/left4me/node/agent"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/systemd"
	"github.com/left4me/left4me/node/unit"
)

func main() {
	n := flag.Int("n", 500, "round trips per path")
	port := flag.Int("port", 47015, "first of the 10 game ports the agent may hand out")
	flag.Parse()
	if err := run(*n, int32(*port)); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rcon:", err)
		os.Exit(1)
	}
}

const (
	ns, name, nodeName = "default", "bench", "bench-node"
	command            = "status"
)

func run(n int, port int32) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the node agent chowns the game's files")
	}
	dir, err := os.MkdirTemp("", "l4m-bench-rcon-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srv, admin, _, err := benchkit.StartServer(ctx, filepath.Join(dir, "server"))
	if err != nil {
		return err
	}
	defer srv.Close()
	sd := systemd.NewFake()
	stopAgent, err := startAgent(ctx, srv, admin, sd, filepath.Join(dir, "node"), port)
	if err != nil {
		return err
	}
	defer stopAgent()
	if _, err := admin.Create(ctx, resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: ns}}, false); err != nil {
		return err
	}
	if _, err := admin.Create(ctx, resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: nodeName, Port: port}}, false); err != nil {
		return err
	}
	in, err := waitInstance(ctx, admin, "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	if err != nil {
		return err
	}
	stopGame, err := startGame(ctx, dir, sd, filepath.Join(dir, "node"), in)
	if err != nil {
		return err
	}
	defer stopGame()
	if in, err = waitInstance(ctx, admin, "Ready", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.ConditionReady)
	}); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", in.Status.Port)
	pw, err := os.ReadFile(filepath.Join(unit.Paths{Root: filepath.Join(dir, "node")}.Instance(unit.ID(ns, name)), "rcon_password"))
	if err != nil {
		return err
	}
	password := strings.TrimSpace(string(pw))

	editors, err := editorClients(ctx, srv, admin, rconUsers)
	if err != nil {
		return err
	}
	calls := 0
	viaAPI := func() error {
		calls++
		out, err := editors[calls%len(editors)].RCON(ctx, ns, name, command)
		if err == nil && !strings.Contains(out.Output, "hostname") {
			err = fmt.Errorf("status through the API answered %q", out.Output)
		}
		return err
	}
	fresh := func() error {
		c, err := rcon.Dial(ctx, addr, password)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Exec(ctx, command)
		return err
	}
	kept, err := rcon.Dial(ctx, addr, password)
	if err != nil {
		return err
	}
	defer kept.Close()
	open := func() error { _, err := kept.Exec(ctx, command); return err }

	paths := []struct {
		name string
		op   func() error
		d    []time.Duration
	}{{name: "api (client.RCON → server → agent → game)", op: viaAPI}, {name: "direct, new connection (Dial+Exec)", op: fresh}, {name: "direct, one connection (Exec)", op: open}}
	// Warm up every path (TLS sessions, connection pools), then alternate
	// them round trip by round trip: the machine is shared, and
	// interleaving spreads its noise over all three.
	for i := range paths {
		for w := 0; w < 20; w++ {
			if err := paths[i].op(); err != nil {
				return fmt.Errorf("%s: %w", paths[i].name, err)
			}
		}
	}
	for k := 0; k < n; k++ {
		for i := range paths {
			start := time.Now()
			if err := paths[i].op(); err != nil {
				return fmt.Errorf("%s: %w", paths[i].name, err)
			}
			paths[i].d = append(paths[i].d, time.Since(start))
		}
	}
	limit := benchkit.Percentile(paths[1].d, 0.5)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "RCON %q round trip\tn\tmedian\tp90\tp99\tmedian / direct new connection\tmedian − direct new connection\t\n", command)
	for _, p := range paths {
		med := benchkit.Percentile(p.d, 0.5)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.2f\t%s\t\n", p.name, len(p.d), benchkit.Round(med), benchkit.Round(benchkit.Percentile(p.d, 0.9)), benchkit.Round(benchkit.Percentile(p.d, 0.99)), float64(med)/float64(limit), benchkit.Round(med-limit))
	}
	return tw.Flush()
}

// rconUsers is how many editors the api path's round trips are spread
// over: the API allows each user 5 RCON commands a second (burst 10), a
// policy this program must not measure as latency. With 4, each sends
// well under 5 a second at this pace; their clients do not retry a 429,
// so one would end the run rather than hide in a median.
const rconUsers = 4

// editorClients makes n editor tokens of the namespace and their clients.
func editorClients(ctx context.Context, srv *server.Server, admin *client.Client, n int) ([]*client.Client, error) {
	var out []*client.Client
	for i := 0; i < n; i++ {
		tok, err := admin.Create(ctx, resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-editor-%d", i)},
			Spec: v1.TokenSpec{Type: v1.TokenUser, User: fmt.Sprintf("bench-editor-%d", i), Roles: []v1.RoleBinding{{Role: "editor", Namespace: ns}}}}, false)
		if err != nil {
			return nil, err
		}
		cl, err := client.New(client.Config{Server: srv.URL(), Token: tok.(*v1.Token).Status.Token, CAData: srv.CAPEM, NoRetry: true})
		if err != nil {
			return nil, err
		}
		out = append(out, cl)
	}
	return out, nil
}

// startAgent runs a node agent for nodeName with its own node token, its
// log/RCON server on loopback, and probes every 100ms (so the game turns
// Ready soon after it answers). The returned func stops it.
func startAgent(ctx context.Context, srv *server.Server, admin *client.Client, sd *systemd.Fake, root string, port int32) (func(), error) {
	tok, err := admin.Create(ctx, resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "bench-node"}, Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: nodeName}}, false)
	if err != nil {
		return nil, err
	}
	node, err := client.New(client.Config{Server: srv.URL(), Token: tok.(*v1.Token).Status.Token, CAData: srv.CAPEM})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "installation"), 0o755); err != nil {
		return nil, err
	}
	a := agent.New(agent.Options{Client: node, NodeName: nodeName, Root: root, PortMin: port, PortMax: port + 9, Systemd: sd,
		Accounts: gameuser.NewFake(480000), Log: logr.Discard(), LogsListen: "127.0.0.1:0", CAPEM: srv.CAPEM,
		Address: "127.0.0.1", Heartbeat: time.Second, Resync: time.Hour, Probe: 100 * time.Millisecond})
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "bench-rcon: agent:", err)
		}
	}, nil
}

// startGame builds hack/srcds-double and runs it with the argv of the
// unit the agent wrote (ExecStart, srcds_run swapped for the double), in
// the Instance's generated layer (the mount unit's topmost lowerdir),
// whose left4dead2/cfg/server.cfg holds the agent's rcon_password. The returned func stops it (SIGINT, as
// systemd's KillSignal).
func startGame(ctx context.Context, dir string, sd *systemd.Fake, root string, in *v1.Instance) (func(), error) {
	bin := filepath.Join(dir, "srcds-double")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./hack/srcds-double").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the srcds double: %w\n%s", err, out)
	}
	id := unit.ID(in.Namespace, in.Name)
	files := sd.Files()
	argv, err := execStart(files[unit.ServiceName(id)])
	if err != nil {
		return nil, err
	}
	// The generated layer is the mount's topmost lowerdir.
	mount := files[unit.MountName(unit.Paths{Root: root}, id)]
	_, opts, ok := strings.Cut(mount, "Options=lowerdir=")
	if !ok {
		return nil, fmt.Errorf("no lowerdir in the mount unit:\n%s", mount)
	}
	generated, _, _ := strings.Cut(opts, ":")
	cmd := exec.Command(bin, argv[1:]...)
	cmd.Dir = generated
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}, nil
}

// execStart reads the ExecStart= line of a unit the agent wrote: every
// argument double-quoted, \ and " escaped, $ doubled.
func execStart(unitFile string) ([]string, error) {
	for _, line := range strings.Split(unitFile, "\n") {
		rest, ok := strings.CutPrefix(line, "ExecStart=")
		if !ok {
			continue
		}
		var argv []string
		for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
			if rest[0] != '"' {
				return nil, fmt.Errorf("ExecStart %q: an argument not quoted", line)
			}
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				} else if rest[i] == '$' && i+1 < len(rest) && rest[i+1] == '$' {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, fmt.Errorf("ExecStart %q: an unterminated quote", line)
			}
			argv = append(argv, b.String())
			rest = rest[i+1:]
		}
		return argv, nil
	}
	return nil, fmt.Errorf("the unit has no ExecStart:\n%s", unitFile)
}

// waitInstance polls the Instance until cond holds (30 s at most).
func waitInstance(ctx context.Context, cl *client.Client, what string, cond func(*v1.Instance) bool) (*v1.Instance, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		obj, err := cl.Get(ctx, resources.Instances, ns, name)
		if err == nil && cond(obj.(*v1.Instance)) {
			return obj.(*v1.Instance), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("its status: %+v", obj.(*v1.Instance).Status)
			}
			return nil, fmt.Errorf("instance %s/%s not %s within 30s: %w", ns, name, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
