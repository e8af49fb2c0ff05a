package app

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// annotationChange is what one KEY=VALUE or KEY- argument asks for.
type annotationChange struct {
	key, value string
	remove     bool
}

// parseAnnotationArgs reads kubectl's annotate arguments: KEY=VALUE sets,
// KEY- removes. Keys must be qualified names (an optional DNS prefix and
// a name), as the API server requires.
func parseAnnotationArgs(args []string) ([]annotationChange, error) {
	var out []annotationChange
	seen := map[string]bool{}
	for _, a := range args {
		var ch annotationChange
		if k, v, ok := strings.Cut(a, "="); ok {
			ch = annotationChange{key: k, value: v}
		} else if k, ok := strings.CutSuffix(a, "-"); ok {
			ch = annotationChange{key: k, remove: true}
		} else {
			return nil, fmt.Errorf("annotation %q: want KEY=VALUE or KEY- (to remove it)", a)
		}
		if errs := validation.IsQualifiedName(ch.key); len(errs) > 0 {
			return nil, fmt.Errorf("annotation key %q: %s", ch.key, strings.Join(errs, "; "))
		}
		if seen[ch.key] {
			return nil, fmt.Errorf("annotation key %q given twice", ch.key)
		}
		seen[ch.key] = true
		out = append(out, ch)
	}
	return out, nil
}

// annotationPatch is the metadata.annotations merge patch for changes
// against the object's current annotations, pinned to its resourceVersion
// so that the --overwrite check cannot race another writer. Without
// overwrite, changing a key that already has another value is refused.
func annotationPatch(current map[string]string, resourceVersion string, changes []annotationChange, overwrite bool) ([]byte, error) {
	var clash []string
	set := map[string]any{}
	for _, ch := range changes {
		old, has := current[ch.key]
		switch {
		case ch.remove:
			set[ch.key] = nil
		case has && old != ch.value && !overwrite:
			clash = append(clash, fmt.Sprintf("'%s' already has a value (%s)", ch.key, old))
		default:
			set[ch.key] = ch.value
		}
	}
	if len(clash) > 0 {
		sort.Strings(clash)
		return nil, fmt.Errorf("--overwrite is false but found the following declared annotation(s): %s", strings.Join(clash, ", "))
	}
	return json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": resourceVersion, "annotations": set}})
}

func (c *cli) newAnnotateCommand() *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "annotate KIND NAME KEY=VALUE... [KEY-]...",
		Short: "Set or remove annotations on an object",
		Long: `Annotate sets (KEY=VALUE) or removes (KEY-) annotations, as kubectl annotate
does. Changing a key that already has another value needs --overwrite.

Annotations left4me acts on:
  left4me.io/checkRequestedAt on an Installation: nodes ask Steam for the
    branch's build now instead of at the next checkInterval.
  left4me.io/restartedAt on a Blueprint or an Instance (an RFC 3339 time,
    what 'rollout restart' sets), and left4me.io/forceRestartAt (the same
    time: what 'rollout restart --force' sets).`,
		Example: `  l4mctl annotate installation l4d2 left4me.io/checkRequestedAt=$(date -u +%FT%TZ) --overwrite
  l4mctl annotate instance versus-1 owner=league
  l4mctl annotate instance versus-1 owner-`,
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: c.completeKindThenNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, rest := args[0], "", args[1:]
			if k, n, ok := strings.Cut(kind, "/"); ok {
				kind, name = k, n
			} else {
				name, rest = args[1], args[2:]
			}
			if len(rest) == 0 {
				return fmt.Errorf("say which annotations to set (KEY=VALUE) or remove (KEY-)")
			}
			changes, err := parseAnnotationArgs(rest)
			if err != nil {
				return err
			}
			res, err := lookupKind(kind)
			if err != nil {
				return err
			}
			ns := c.ns()
			if !res.Namespaced {
				ns = ""
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, cancel := c.requestContext(cmd.Context())
			defer cancel()
			obj, err := cl.Get(ctx, res, ns, name)
			if err != nil {
				return err
			}
			patch, err := annotationPatch(obj.GetAnnotations(), obj.GetResourceVersion(), changes, overwrite)
			if err != nil {
				return err
			}
			if _, err := cl.Patch(ctx, res, ns, name, "application/merge-patch+json", patch, false); err != nil {
				return err
			}
			fmt.Fprintf(c.streams.Out, "%s.%s/%s annotated\n", res.Singular, v1.Group, name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace annotations that already have a value")
	return cmd
}
