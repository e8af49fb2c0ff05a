package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/validation"
)

func (c *cli) newUserCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the dashboard's password users (admin only)",
		Long: `Password users log in to the web dashboard (https://SERVER/ui/) with a name
and a password. Their roles mean what a user token's do: admin, or editor/viewer
in one namespace. The server keeps only an argon2id hash of the password and
never returns it. Passwords are read from standard input (one line), never from
the command line, where other users of the machine could see them.`,
	}
	var roles []string
	var desc string
	var fromStdin bool
	create := &cobra.Command{
		Use:     "create NAME --role ROLE[:NAMESPACE]... --password-stdin",
		Short:   "Create a password user",
		Example: `  printf '%s\n' "$PASSWORD" | l4mctl user create alice --role editor:team-a --role viewer:team-b --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !fromStdin {
				return fmt.Errorf("give the password on standard input with --password-stdin")
			}
			spec, err := userSpec(roles, desc)
			if err != nil {
				return err
			}
			if spec.Password, err = readPassword(c.streams.In); err != nil {
				return err
			}
			return c.createUser(cmd.Context(), args[0], spec)
		},
	}
	create.Flags().StringSliceVar(&roles, "role", nil, "role binding: admin, editor:NAMESPACE or viewer:NAMESPACE (repeatable)")
	create.Flags().StringVar(&desc, "description", "", "who the user is")
	create.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input (required)")

	var passwdStdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME --password-stdin",
		Short: "Set a user's password (their dashboard sessions end)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwdStdin {
				return fmt.Errorf("give the password on standard input with --password-stdin")
			}
			pw, err := readPassword(c.streams.In)
			if err != nil {
				return err
			}
			return c.setPassword(cmd.Context(), args[0], pw)
		},
	}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the password from standard input (required)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List password users and their roles (never a password or its hash)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.listUsers(cmd.Context())
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete password users: their dashboard sessions end at their next request",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDelete(cmd.Context(), &deleteOptions{dryRun: "none", timeout: time.Minute}, append([]string{"users"}, args...))
		},
	}
	cmd.AddCommand(create, passwd, list, del)
	return cmd
}

func userSpec(roles []string, desc string) (v1.UserSpec, error) {
	spec := v1.UserSpec{Description: desc}
	for _, r := range roles {
		role, ns, _ := strings.Cut(r, ":")
		spec.Roles = append(spec.Roles, v1.RoleBinding{Role: role, Namespace: ns})
	}
	if len(spec.Roles) == 0 {
		return spec, fmt.Errorf("a user needs --role (admin, editor:NAMESPACE or viewer:NAMESPACE)")
	}
	return spec, nil
}

// readPassword reads one line (without its line end) and checks it as the
// server will, so a short password is refused before anything is sent.
func readPassword(in io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(in, validation.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if errs := validation.ValidatePassword(pw, nil); len(errs) > 0 {
		return "", fmt.Errorf("password (standard input): %s", errs[0].Detail)
	}
	return pw, nil
}

func (c *cli) createUser(ctx context.Context, name string, spec v1.UserSpec) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	if _, err := cl.Create(ctx, resources.Users, &v1.User{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, false); err != nil {
		return err
	}
	fmt.Fprintf(c.streams.Out, "user.%s/%s created\n", v1.Group, name)
	return nil
}

func (c *cli) setPassword(ctx context.Context, name, pw string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	body := fmt.Appendf(nil, `{"spec":{"password":%q}}`, pw)
	if _, err := cl.Patch(ctx, resources.Users, "", name, "application/merge-patch+json", body, false); err != nil {
		return err
	}
	fmt.Fprintf(c.streams.Out, "user.%s/%s password changed\n", v1.Group, name)
	return nil
}

func (c *cli) listUsers(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	items, _, err := listAll(ctx, cl, resources.Users, "", client.ListOptions{})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.streams.Out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tPASSWORD CHANGED\tAGE")
	for _, o := range items {
		u := o.(*v1.User)
		var roles []string
		for _, r := range u.Spec.Roles {
			roles = append(roles, strings.TrimSuffix(r.Role+":"+r.Namespace, ":"))
		}
		changed := "-"
		if t := u.Status.PasswordChangedAt; t != nil {
			changed = duration.HumanDuration(time.Since(t.Time)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, strings.Join(roles, ","), changed, duration.HumanDuration(time.Since(u.CreationTimestamp.Time)))
	}
	return tw.Flush()
}
