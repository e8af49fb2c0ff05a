package app

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/manifest"
	"github.com/left4me/left4me/apis/resources"
)

type deleteOptions struct {
	files          []string
	recursive      bool
	wait           bool
	timeout        time.Duration
	ignoreNotFound bool
	dryRun         string
}

func (c *cli) newDeleteCommand() *cobra.Command {
	o := &deleteOptions{}
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILENAME)",
		Short: "Delete objects by name or by the files that declared them",
		Long: `Delete asks the server to delete objects. An object with finalizers (an
Instance whose node still has to stop and clean up its server) stays until
they are done; --wait (the default) waits for that.`,
		Example: `  l4mctl delete instance srv1
  l4mctl delete -f config/samples/instance.yaml`,
		ValidArgsFunction: c.completeKindThenNames,
		RunE:              func(cmd *cobra.Command, args []string) error { return c.runDelete(cmd.Context(), o, args) },
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, "file, directory or - for stdin")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read directories recursively")
	f.BoolVar(&o.wait, "wait", true, "wait until the objects are gone")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long --wait waits")
	f.BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "treat a missing object as deleted")
	f.StringVar(&o.dryRun, "dry-run", "none", `"none" or "server"`)
	return cmd
}

type target struct {
	res       *resources.Resource
	namespace string
	name      string
}

func (c *cli) runDelete(ctx context.Context, o *deleteOptions, args []string) error {
	if o.dryRun != "none" && o.dryRun != "server" {
		return fmt.Errorf("--dry-run must be none or server, not %q", o.dryRun)
	}
	var targets []target
	switch {
	case len(o.files) > 0 && len(args) > 0:
		return fmt.Errorf("give either KIND NAME or -f, not both")
	case len(o.files) > 0:
		docs, err := manifest.Read(o.files, o.recursive, c.streams.In)
		if err != nil {
			return err
		}
		if err := c.setNamespaces(docs); err != nil {
			return err
		}
		for i := len(docs) - 1; i >= 0; i-- {
			targets = append(targets, target{docs[i].Resource, docs[i].Object.GetNamespace(), docs[i].Object.GetName()})
		}
	case len(args) >= 2:
		res, err := lookupKind(args[0])
		if err != nil {
			return err
		}
		ns := c.ns()
		if !res.Namespaced {
			ns = ""
		}
		for _, n := range args[1:] {
			targets = append(targets, target{res, ns, n})
		}
	default:
		return fmt.Errorf("say what to delete: KIND NAME... or -f FILENAME")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	failed := 0
	var pending []target
	for _, t := range targets {
		id := fmt.Sprintf("%s.%s %q", t.res.Singular, v1.Group, t.name)
		rctx, cancel := c.requestContext(ctx)
		_, gone, err := cl.Delete(rctx, t.res, t.namespace, t.name, o.dryRun == "server")
		cancel()
		switch {
		case apierrors.IsNotFound(err) && o.ignoreNotFound:
		case err != nil:
			failed++
			fmt.Fprintf(c.streams.Err, "Error from server (%s): %s: %v\n", apierrors.ReasonForError(err), id, err)
		case o.dryRun == "server":
			fmt.Fprintf(c.streams.Out, "%s deleted (server dry run)\n", id)
		case gone:
			fmt.Fprintf(c.streams.Out, "%s deleted\n", id)
		default:
			pending = append(pending, t)
		}
	}
	for _, t := range pending {
		id := fmt.Sprintf("%s.%s %q", t.res.Singular, v1.Group, t.name)
		if !o.wait {
			fmt.Fprintf(c.streams.Out, "%s marked for deletion (finalizers pending)\n", id)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, o.timeout)
		err := client.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			_, err := cl.Get(ctx, t.res, t.namespace, t.name)
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(c.streams.Err, "error: %s: still waiting on finalizers after %s\n", id, o.timeout)
			continue
		}
		fmt.Fprintf(c.streams.Out, "%s deleted\n", id)
	}
	if failed > 0 {
		return errReported
	}
	return nil
}
