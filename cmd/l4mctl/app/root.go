// Package app holds l4mctl's commands. It is a library so tests can drive
// the real commands against a real server; main only calls Execute.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/apis/client"
)

// Streams are where a command reads and writes.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// ExitError carries a specific exit code (diff exits 1 when there are
// differences, like kubectl diff).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// errReported means the command already printed what went wrong.
var errReported = &ExitError{Code: 1}

// globals are the flags every command shares.
type globals struct {
	configPath string
	server     string
	token      string
	caFile     string
	namespace  string
	timeout    time.Duration
}

type cli struct {
	streams Streams
	g       globals
	// clients are the API clients this command made; their idle
	// connections close when it ends (an embedding program, or a test
	// running many commands, would otherwise keep every one open).
	clientsMu sync.Mutex
	clients   []*client.Client
}

// NewCommand builds the l4mctl command tree.
func NewCommand(streams Streams) *cobra.Command {
	c := &cli{streams: streams}
	root := &cobra.Command{
		Use:   "l4mctl",
		Short: "l4mctl controls left4me: fleets of Left 4 Dead 2 servers",
		Long: `l4mctl controls left4me, the way kubectl controls Kubernetes.

Declare Overlays, Blueprints and Instances in YAML and apply them:
  l4mctl apply -f config/samples/
  l4mctl get instances -o wide`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	pf := root.PersistentFlags()
	pf.StringVar(&c.g.configPath, "config", "", "config file (default $L4MCONFIG, else "+defaultConfigPathHint()+")")
	pf.StringVar(&c.g.server, "server", "", "API server URL (overrides the config file)")
	pf.StringVar(&c.g.token, "token", "", "bearer token (overrides the config file)")
	pf.StringVar(&c.g.caFile, "certificate-authority", "", "CA bundle the server's certificate must chain to (overrides the config file)")
	pf.StringVarP(&c.g.namespace, "namespace", "n", "", "namespace (default: the config file's, else \"default\")")
	pf.DurationVar(&c.g.timeout, "request-timeout", 30*time.Second, "how long one request may take")
	root.RegisterFlagCompletionFunc("namespace", c.completeNames("namespaces"))

	root.AddCommand(
		c.newApplyCommand(),
		c.newDiffCommand(),
		c.newGetCommand(),
		c.newDescribeCommand(),
		c.newDeleteCommand(),
		c.newAnnotateCommand(),
		c.newVersionCommand(),
		c.newAPIResourcesCommand(),
		c.newTokenCommand(),
		c.newUserCommand(),
		c.newLogsCommand(),
		c.newRCONCommand(),
		c.newConsoleCommand(),
		c.newPlayersCommand(),
		c.newCordonCommand(true),
		c.newCordonCommand(false),
		c.newDrainCommand(),
		c.newRolloutCommand(),
		c.newSnapshotCommand(),
		c.newConfigCommand(),
	)
	closeClientsAfter(root, c)
	return root
}

// closeClientsAfter makes every command close the clients it made when it
// returns, whatever it returns.
func closeClientsAfter(cmd *cobra.Command, c *cli) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			defer c.closeClients()
			return run(cmd, args)
		}
	}
	for _, sub := range cmd.Commands() {
		closeClientsAfter(sub, c)
	}
}

func (c *cli) closeClients() {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
	c.clients = nil
}

// Execute runs l4mctl with os.Args and returns the process exit code.
func Execute() int {
	streams := Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	cmd := NewCommand(streams)
	ctx, stop := signalContext()
	defer stop()
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Msg != "" {
			fmt.Fprintln(streams.Err, "error:", ee.Msg)
		}
		return ee.Code
	}
	fmt.Fprintln(streams.Err, "error:", err)
	return 1
}

// client builds an API client from the config file and flags.
func (c *cli) client() (*client.Client, error) {
	f, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	cl, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	c.clientsMu.Lock()
	c.clients = append(c.clients, cl)
	c.clientsMu.Unlock()
	return cl, nil
}

// ns is the namespace a command works in.
func (c *cli) ns() string {
	if c.g.namespace != "" {
		return c.g.namespace
	}
	if cfg, err := c.loadConfig(); err == nil && cfg.Namespace != "" {
		return cfg.Namespace
	}
	return "default"
}

func (c *cli) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.g.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.g.timeout)
}

// waitDeadline bounds a command that waits for the fleet (drain, rollout
// status) by its --timeout (0: as long as it takes). It is checked between
// rounds, never inside one: each round's requests run to their end under
// the per-request timeout, so the command always reports what it saw last
// instead of a request cut in half by the deadline.
type waitDeadline struct{ at time.Time }

func newWaitDeadline(timeout time.Duration) waitDeadline {
	if timeout <= 0 {
		return waitDeadline{}
	}
	return waitDeadline{at: time.Now().Add(timeout)}
}

// errWaitTimeout is what sleep returns once the deadline has passed.
var errWaitTimeout = errors.New("timed out waiting")

// sleep waits interval before the next round, or less if the deadline
// comes first; it returns errWaitTimeout once the deadline has passed, and
// ctx's error if ctx ends (Ctrl-C).
func (d waitDeadline) sleep(ctx context.Context, interval time.Duration) error {
	if !d.at.IsZero() {
		left := time.Until(d.at)
		if left <= 0 {
			return errWaitTimeout
		}
		interval = min(interval, left)
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if !d.at.IsZero() && !time.Now().Before(d.at) {
		return errWaitTimeout
	}
	return nil
}
