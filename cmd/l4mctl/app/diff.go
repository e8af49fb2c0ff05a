package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/manifest"
)

func (c *cli) newDiffCommand() *cobra.Command {
	var files []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "diff -f FILENAME",
		Short: "Show what apply would change, as a unified diff of live and merged objects",
		Long: `Diff asks the server to dry-run the apply (so defaults and validation are the
server's) and prints a unified diff per object. Like kubectl diff it exits 0
when nothing would change, 1 when something would, and above 1 on errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.runDiff(cmd.Context(), files, recursive) },
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file, directory or - for stdin")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read directories recursively")
	cmd.MarkFlagRequired("filename")
	return cmd
}

func (c *cli) runDiff(ctx context.Context, files []string, recursive bool) error {
	docs, err := manifest.Read(files, recursive, c.streams.In)
	if err != nil {
		return &ExitError{Code: 2, Msg: err.Error()}
	}
	if err := c.setNamespaces(docs); err != nil {
		return &ExitError{Code: 2, Msg: err.Error()}
	}
	cl, err := c.client()
	if err != nil {
		return &ExitError{Code: 2, Msg: err.Error()}
	}
	sortForApply(docs)
	changed := false
	for _, d := range docs {
		rctx, cancel := c.requestContext(ctx)
		live, merged, err := dryRunMerge(rctx, cl, d)
		cancel()
		if err != nil {
			return &ExitError{Code: 2, Msg: fmt.Sprintf("%s: %s: %v", d.Source, d.ID(), err)}
		}
		text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(live), B: difflib.SplitLines(merged),
			FromFile: "live/" + d.ID(), ToFile: "merged/" + d.ID(), Context: 3,
		})
		if err != nil {
			return &ExitError{Code: 2, Msg: err.Error()}
		}
		if text != "" {
			changed = true
			fmt.Fprint(c.streams.Out, text)
		}
	}
	if changed {
		return &ExitError{Code: 1}
	}
	return nil
}

// dryRunMerge returns the live object and what apply would make of it, as
// YAML without the fields every write changes.
func dryRunMerge(ctx context.Context, cl *client.Client, d *manifest.Document) (string, string, error) {
	modified, err := desired(d)
	if err != nil {
		return "", "", err
	}
	ns, name := d.Object.GetNamespace(), d.Object.GetName()
	cur, err := cl.Get(ctx, d.Resource, ns, name)
	if apierrors.IsNotFound(err) {
		out, err := cl.CreateRaw(ctx, d.Resource, ns, modified, true)
		if err != nil {
			return "", "", err
		}
		merged, err := diffYAML(out)
		return "", merged, err
	}
	if err != nil {
		return "", "", err
	}
	live, err := diffYAML(cur)
	if err != nil {
		return "", "", err
	}
	patch, err := threeWayPatch(cur, modified)
	if err != nil {
		return "", "", err
	}
	if string(patch) == "{}" {
		return live, live, nil
	}
	out, err := cl.Patch(ctx, d.Resource, ns, name, "application/merge-patch+json", patch, true)
	if err != nil {
		return "", "", err
	}
	merged, err := diffYAML(out)
	return live, merged, err
}

// diffYAML renders an object for diffing: no resourceVersion, uid,
// timestamps or last-applied annotations (kubectl's, and an older l4mctl's,
// which apply removes), which only add noise.
func diffYAML(obj v1.Object) (string, error) {
	obj = obj.DeepCopyObject().(v1.Object)
	obj.SetResourceVersion("")
	obj.SetUID("")
	obj.SetManagedFields(nil)
	if ann := obj.GetAnnotations(); ann != nil {
		delete(ann, LastAppliedAnnotation)
		delete(ann, LegacyLastAppliedAnnotation)
		if len(ann) == 0 {
			ann = nil
		}
		obj.SetAnnotations(ann)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	data, err = json.Marshal(m)
	if err != nil {
		return "", err
	}
	y, err := yaml.JSONToYAML(data)
	return strings.TrimRight(string(y), "\n") + "\n", err
}
