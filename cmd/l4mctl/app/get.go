package app

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

type getOptions struct {
	output        string
	selector      string
	fieldSelector string
	allNamespaces bool
	watch         bool
	noHeaders     bool
	chunkSize     int64
	// showManagedFields keeps metadata.managedFields in yaml and json
	// output; like kubectl, l4mctl leaves them out by default (they are
	// server-side apply's bookkeeping, long and rarely what one looks for).
	showManagedFields bool
}

// hideManagedFields drops managedFields from what is printed unless
// --show-managed-fields asks for them.
func (o *getOptions) hideManagedFields(objs []v1.Object) {
	if o.showManagedFields {
		return
	}
	for _, obj := range objs {
		obj.SetManagedFields(nil)
	}
}

func (c *cli) newGetCommand() *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List objects, or show some by name",
		Example: `  l4mctl get instances -o wide
  l4mctl get inst srv1 -o yaml
  l4mctl get instances -A -l mode=versus
  l4mctl get instances --field-selector spec.nodeName=host-a
  l4mctl get instances -w
  l4mctl get installations -o wide`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: c.completeKindThenNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runGet(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "output format: wide, yaml, json or name")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector, e.g. mode=versus,tier!=free")
	f.StringVar(&o.fieldSelector, "field-selector", "", "field selector, e.g. spec.nodeName=host-a,status.phase=Running")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	f.BoolVarP(&o.watch, "watch", "w", false, "after listing, print changes as they happen")
	f.BoolVar(&o.noHeaders, "no-headers", false, "leave out the table header")
	f.Int64Var(&o.chunkSize, "chunk-size", 500, "fetch large lists in pages of this many (0: all at once)")
	f.BoolVar(&o.showManagedFields, "show-managed-fields", false, "keep metadata.managedFields in yaml and json output")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"wide", "yaml", "json", "name"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func lookupKind(name string) (*resources.Resource, error) {
	res, ok := resources.Lookup(name)
	if !ok {
		var kinds []string
		for _, r := range resources.All {
			kinds = append(kinds, r.Plural)
		}
		return nil, fmt.Errorf("the server doesn't have a resource type %q (try one of: %s)", name, strings.Join(kinds, ", "))
	}
	return res, nil
}

func (c *cli) runGet(ctx context.Context, o *getOptions, args []string) error {
	switch o.output {
	case "", "wide", "yaml", "json", "name":
	default:
		return fmt.Errorf("--output must be wide, yaml, json or name, not %q", o.output)
	}
	res, err := lookupKind(args[0])
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ns := c.ns()
	if o.allNamespaces || !res.Namespaced {
		ns = ""
	}
	names := args[1:]
	if len(names) > 0 {
		if o.watch {
			return fmt.Errorf("--watch works on lists; use --field-selector metadata.name=%s", names[0])
		}
		return c.getNamed(ctx, cl, res, ns, names, o)
	}

	rctx, cancel := c.requestContext(ctx)
	items, rv, err := listAll(rctx, cl, res, ns, client.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector, Limit: o.chunkSize})
	cancel()
	if err != nil {
		return err
	}
	tp := newTablePrinter(c.streams.Out, res, o.output == "wide", o.allNamespaces, o.noHeaders)
	if len(items) == 0 && !o.watch && (o.output == "" || o.output == "wide") {
		if res.Namespaced && !o.allNamespaces {
			fmt.Fprintf(c.streams.Err, "No resources found in %s namespace.\n", ns)
		} else {
			fmt.Fprintln(c.streams.Err, "No resources found")
		}
		return nil
	}
	sortForDisplay(items)
	o.hideManagedFields(items)
	if err := c.printObjects(tp, res, items, o.output, !o.watch); err != nil {
		return err
	}
	if !o.watch {
		return nil
	}
	return c.follow(ctx, cl, res, ns, rv, o, tp)
}

// listAll follows continue tokens until the whole list is read.
func listAll(ctx context.Context, cl *client.Client, res *resources.Resource, ns string, opts client.ListOptions) ([]v1.Object, string, error) {
	var out []v1.Object
	for {
		list, err := cl.List(ctx, res, ns, opts)
		if err != nil {
			return nil, "", err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, "", err
		}
		for _, it := range items {
			out = append(out, it.(v1.Object))
		}
		if list.GetContinue() == "" {
			return out, list.GetResourceVersion(), nil
		}
		opts.Continue = list.GetContinue()
	}
}

func (c *cli) getNamed(ctx context.Context, cl *client.Client, res *resources.Resource, ns string, names []string, o *getOptions) error {
	if res.Namespaced && ns == "" {
		ns = c.ns()
	}
	var objs []v1.Object
	var missing []string
	for _, n := range names {
		rctx, cancel := c.requestContext(ctx)
		obj, err := cl.Get(rctx, res, ns, n)
		cancel()
		if apierrors.IsNotFound(err) {
			missing = append(missing, fmt.Sprintf("%s.%s %q not found", res.Singular, v1.Group, n))
			continue
		}
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	tp := newTablePrinter(c.streams.Out, res, o.output == "wide", false, o.noHeaders)
	o.hideManagedFields(objs)
	if len(objs) == 1 && (o.output == "yaml" || o.output == "json") {
		if err := writeObject(c.streams.Out, objs[0], o.output); err != nil {
			return err
		}
	} else if len(objs) > 0 {
		if err := c.printObjects(tp, res, objs, o.output, true); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		for _, m := range missing {
			fmt.Fprintln(c.streams.Err, "Error from server (NotFound):", m)
		}
		return errReported
	}
	return nil
}

// printObjects prints a list in the chosen format; asList wraps yaml and
// json output in a List, as kubectl does.
func (c *cli) printObjects(tp *tablePrinter, res *resources.Resource, objs []v1.Object, output string, asList bool) error {
	switch output {
	case "", "wide":
		for _, o := range objs {
			tp.print(o)
		}
		tp.flush()
	case "name":
		for _, o := range objs {
			fmt.Fprintf(c.streams.Out, "%s.%s/%s\n", res.Singular, v1.Group, o.GetName())
		}
	case "yaml", "json":
		if !asList {
			for _, o := range objs {
				if err := writeObject(c.streams.Out, o, output); err != nil {
					return err
				}
			}
			return nil
		}
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
		return writeObject(c.streams.Out, list, output)
	}
	return nil
}

func writeObject(w interface{ Write([]byte) (int, error) }, obj any, format string) error {
	data, err := json.MarshalIndent(obj, "", "    ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		if _, ok := obj.(v1.Object); ok {
			data = append([]byte("---\n"), data...)
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}

// follow prints changes after the list, resuming the watch when the server
// ends it and relisting when the revision is gone, like kubectl get -w.
func (c *cli) follow(ctx context.Context, cl *client.Client, res *resources.Resource, ns, rv string, o *getOptions, tp *tablePrinter) error {
	opts := client.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector, ResourceVersion: rv}
	for ctx.Err() == nil {
		w, err := cl.Watch(ctx, res, ns, opts)
		if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
			opts.ResourceVersion = ""
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				opts.ResourceVersion = ""
				break
			}
			obj := ev.Object.(v1.Object)
			opts.ResourceVersion = obj.GetResourceVersion()
			if o.output == "" || o.output == "wide" {
				tp.print(obj)
				tp.flush()
				continue
			}
			o.hideManagedFields([]v1.Object{obj})
			if err := c.printObjects(tp, res, []v1.Object{obj}, o.output, false); err != nil {
				return err
			}
		}
		w.Stop()
	}
	return nil
}

// completeKindThenNames completes kinds, then names of that kind.
func (c *cli) completeKindThenNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		var kinds []string
		for _, r := range resources.All {
			kinds = append(kinds, r.Plural)
		}
		return kinds, cobra.ShellCompDirectiveNoFileComp
	}
	return c.completeNames(args[0])(cmd, args, toComplete)
}

func (c *cli) completeNames(kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		res, ok := resources.Lookup(kind)
		cl, err := c.client()
		if !ok || err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := c.requestContext(cmd.Context())
		defer cancel()
		ns := c.ns()
		if !res.Namespaced {
			ns = ""
		}
		items, _, err := listAll(ctx, cl, res, ns, client.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, it := range items {
			if strings.HasPrefix(it.GetName(), toComplete) {
				names = append(names, it.GetName())
			}
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
