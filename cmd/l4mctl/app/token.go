package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

var tokenResource = resources.Tokens

func (c *cli) newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke bearer tokens (admin only)",
		Long: `Tokens are how people, pipelines and node agents authenticate. The secret
is printed once, when the token is created; the server keeps only its hash.

  user tokens  carry role bindings: admin, or editor/viewer in one namespace
  join tokens  let a new host obtain its node token, and nothing else
  node tokens  authenticate one node agent (usually obtained with a join token)`,
	}
	var roles []string
	var ttl time.Duration
	var desc string
	var uses int32
	var printJoin bool
	create := &cobra.Command{
		Use:   "create (user NAME --role ROLE[:NAMESPACE]... | join | node NODENAME)",
		Short: "Create a token and print it (once)",
		Example: `  l4mctl token create user alice --role editor:team-a --role viewer:team-b --ttl 720h
  l4mctl token create user ci --role admin
  l4mctl token create join --ttl 1h
  l4mctl token create join --uses 3   # three hosts may join with it (default: one, within 24h)
  ssh root@host-1 "$(l4mctl token create join --print-join-command) --node-name host-1"`,
		Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"user", "join", "node"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := tokenSpec(args, roles, desc)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("uses") {
				if spec.Type != v1.TokenJoin {
					return fmt.Errorf("--uses counts the nodes a join token admits: only for token create join")
				}
				if uses < 1 {
					return fmt.Errorf("--uses %d: a join token admits at least one node", uses)
				}
				spec.Uses = uses
			}
			if printJoin && spec.Type != v1.TokenJoin {
				return fmt.Errorf("--print-join-command prints how a host joins: only for token create join")
			}
			if ttl > 0 {
				exp := metav1.NewTime(time.Now().Add(ttl).Truncate(time.Second))
				spec.ExpirationTime = &exp
			}
			return c.createToken(cmd.Context(), spec, printJoin)
		},
	}
	create.Flags().StringSliceVar(&roles, "role", nil, "role binding: admin, editor:NAMESPACE or viewer:NAMESPACE (repeatable)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h (default: 24h for join tokens, no expiry for others)")
	create.Flags().Int32Var(&uses, "uses", 1, "join tokens: how many nodes may join with it")
	create.Flags().StringVar(&desc, "description", "", "what the token is for")
	create.Flags().BoolVar(&printJoin, "print-join-command", false, "join tokens: print only the l4m-node join command a host runs (with the token and the CA's hash), for scripts")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets), with the uses a join token has left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runGet(cmd.Context(), &getOptions{chunkSize: 500}, []string{"tokens"})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke tokens: requests with them get 401 from now on",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDelete(cmd.Context(), &deleteOptions{dryRun: "none", timeout: time.Minute}, append([]string{"tokens"}, args...))
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func tokenSpec(args, roles []string, desc string) (v1.TokenSpec, error) {
	spec := v1.TokenSpec{Description: desc}
	switch args[0] {
	case "user":
		if len(args) != 2 {
			return spec, fmt.Errorf("token create user NAME: the holder's name is missing")
		}
		spec.Type, spec.User = v1.TokenUser, args[1]
		for _, r := range roles {
			role, ns, _ := strings.Cut(r, ":")
			spec.Roles = append(spec.Roles, v1.RoleBinding{Role: role, Namespace: ns})
		}
		if len(spec.Roles) == 0 {
			return spec, fmt.Errorf("a user token needs --role (admin, editor:NAMESPACE or viewer:NAMESPACE)")
		}
	case "join":
		if len(args) != 1 || len(roles) > 0 {
			return spec, fmt.Errorf("token create join takes no name and no --role")
		}
		spec.Type = v1.TokenJoin
	case "node":
		if len(args) != 2 || len(roles) > 0 {
			return spec, fmt.Errorf("token create node NODENAME takes no --role")
		}
		spec.Type, spec.NodeName = v1.TokenNode, args[1]
	default:
		return spec, fmt.Errorf("unknown token type %q: user, join or node", args[0])
	}
	return spec, nil
}

// createToken creates the token and prints it on stdout. For a join token
// it also prints, on stderr (stdout stays the token alone, for scripts),
// the l4m-node join command a host runs, its CA pinned by the hash of the
// CA in this config; printJoin prints that command alone, on stdout.
func (c *cli) createToken(ctx context.Context, spec v1.TokenSpec, printJoin bool) error {
	var server, caHash string
	var caErr error
	if spec.Type == v1.TokenJoin {
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		server = cfg.Server
		caHash, caErr = configCAHash(cfg)
		if printJoin && caErr != nil {
			return caErr
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	// The server names the token; the name here only satisfies the schema.
	out, err := cl.Create(ctx, tokenResource, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Spec: spec}, false)
	if err != nil {
		return err
	}
	t := out.(*v1.Token)
	if printJoin {
		fmt.Fprintln(c.streams.Out, joinCommand(server, t.Status.Token, caHash))
		return nil
	}
	fmt.Fprintf(c.streams.Err, "token.%s/%s created; store it now, it is not shown again:\n", v1.Group, t.Name)
	fmt.Fprintln(c.streams.Out, t.Status.Token)
	if spec.Type == v1.TokenJoin {
		if caErr != nil {
			fmt.Fprintf(c.streams.Err, "a host joins with this, as root, given the hash of the server's CA (%v):\n  %s\n", caErr, joinCommand(server, t.Status.Token, "sha256:<hash>"))
		} else {
			fmt.Fprintf(c.streams.Err, "a host joins with (as root, adding --node-name, --address, --labels as it needs):\n  %s\n", joinCommand(server, t.Status.Token, caHash))
		}
	}
	return nil
}

// joinCommand is the command a host runs to join with token.
func joinCommand(server, token, caHash string) string {
	return fmt.Sprintf("l4m-node join %s --token %s --ca-hash %s", server, token, caHash)
}
