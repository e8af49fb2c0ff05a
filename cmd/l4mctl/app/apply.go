package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/manifest"
	"github.com/left4me/left4me/apis/resources"
)

// LastAppliedAnnotation holds the manifest as last applied: the "original"
// of the three-way merge, and the mark of objects --prune may delete. It is
// kubectl's key, holding what kubectl apply writes for the same file, so
// either tool's apply sees the other's as its own.
const LastAppliedAnnotation = v1.AnnotationLastApplied

// LegacyLastAppliedAnnotation is where an older l4mctl kept it: read as the
// original when LastAppliedAnnotation is missing, removed by the next apply.
const LegacyLastAppliedAnnotation = v1.LegacyAnnotationLastApplied

// lastApplied is the manifest an earlier apply (kubectl's, this l4mctl's
// or an older one's) recorded on obj, and whether one did.
func lastApplied(obj v1.Object) (string, bool) {
	ann := obj.GetAnnotations()
	if v, ok := ann[LastAppliedAnnotation]; ok {
		return v, true
	}
	v, ok := ann[LegacyLastAppliedAnnotation]
	return v, ok
}

type applyOptions struct {
	files     []string
	recursive bool
	dryRun    string
	prune     bool
	selector  string
	all       bool
	wait      bool
	timeout   time.Duration
	// serverSide sends each document as a server-side apply owned by
	// fieldManager; forceConflicts takes over fields others own.
	serverSide     bool
	forceConflicts bool
	fieldManager   string
}

// Field managers l4mctl apply writes as, kubectl's names with l4mctl's:
// a client-side apply's patches and a server-side apply's configuration
// are two different owners, as kubectl's are.
const (
	serverSideManager = "l4mctl"
	clientSideManager = "l4mctl-client-side-apply"
)

func (c *cli) newApplyCommand() *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply -f FILENAME",
		Short: "Create or update objects from files (three-way merge, like kubectl apply)",
		Long: `Apply creates objects that do not exist and updates those that do with a
three-way merge of the last applied manifest, the file and the live object:
fields you removed from the file are removed, fields others set are kept.
The last applied manifest is kept where and as kubectl apply keeps it
(kubectl.kubernetes.io/last-applied-configuration), so the two can take turns.

With --prune -l SELECTOR it also deletes objects that an earlier apply created,
that match the selector, and that are gone from the files (the GitOps loop).

With --server-side the server merges instead (server-side apply, as kubectl
apply --server-side): each file is the whole of what --field-manager wants,
the fields it names become that manager's, and a field another manager set
to something else is refused, naming the field and its manager, unless
--force-conflicts takes it over.`,
		Example: `  l4mctl apply -f config/samples/
  l4mctl apply -f fleet/ -R --prune -l app.kubernetes.io/part-of=fleet
  cat srv.yaml | l4mctl apply -f -
  l4mctl apply -f srv.yaml --dry-run=server
  l4mctl apply -f srv.yaml --wait --timeout 2m
  l4mctl apply --server-side --field-manager=gitops -f fleet/ -R`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.runApply(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	f.BoolVarP(&o.recursive, "recursive", "R", false, "read directories recursively")
	f.StringVar(&o.dryRun, "dry-run", "none", `"none", "client" (print only) or "server" (the server checks everything, stores nothing)`)
	f.BoolVar(&o.prune, "prune", false, "delete applied objects that are gone from the files (needs -l or --all)")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector for --prune")
	f.BoolVar(&o.all, "all", false, "with --prune: consider every object applied earlier")
	f.BoolVar(&o.wait, "wait", false, "wait until Instances have caught up with their spec and are Ready")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	f.BoolVar(&o.serverSide, "server-side", false, "let the server merge (server-side apply, with field ownership)")
	f.BoolVar(&o.forceConflicts, "force-conflicts", false, "with --server-side: take over fields other managers own")
	f.StringVar(&o.fieldManager, "field-manager", serverSideManager, "with --server-side: the manager that owns the applied fields")
	cmd.MarkFlagRequired("filename")
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

func (o *applyOptions) check() error {
	switch o.dryRun {
	case "none", "client", "server":
	default:
		return fmt.Errorf("--dry-run must be none, client or server, not %q", o.dryRun)
	}
	if o.prune && o.selector == "" && !o.all {
		return fmt.Errorf("--prune needs a selector (-l) or --all, so it cannot delete what another pipeline applied")
	}
	if !o.prune && (o.all) {
		return fmt.Errorf("--all only goes with --prune")
	}
	if !o.serverSide && o.forceConflicts {
		return fmt.Errorf("--force-conflicts only goes with --server-side")
	}
	if o.serverSide && o.dryRun == "client" {
		return fmt.Errorf("--dry-run=client does not go with --server-side (only the server can merge): use --dry-run=server")
	}
	if o.serverSide && o.prune {
		return fmt.Errorf("--prune does not go with --server-side: it finds what an earlier apply made by the last-applied annotation, which server-side apply does not write")
	}
	if o.serverSide && o.fieldManager == "" {
		return fmt.Errorf("--field-manager must not be empty")
	}
	return nil
}

func dryRunSuffix(mode string) string {
	switch mode {
	case "server":
		return " (server dry run)"
	case "client":
		return " (dry run)"
	}
	return ""
}

func (c *cli) runApply(ctx context.Context, o *applyOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	docs, err := manifest.Read(o.files, o.recursive, c.streams.In)
	if err != nil {
		return err
	}
	if err := c.setNamespaces(docs); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	sortForApply(docs)
	failed := 0
	var applied []*manifest.Document
	for _, d := range docs {
		rctx, cancel := c.requestContext(ctx)
		var result string
		if o.serverSide {
			result, err = c.applyServerSide(rctx, cl, d, o)
		} else {
			result, err = c.applyOne(rctx, cl, d, o.dryRun)
		}
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(c.streams.Err, "error: %s: %s: %v\n", d.Source, d.ID(), err)
			continue
		}
		applied = append(applied, d)
		fmt.Fprintf(c.streams.Out, "%s %s%s\n", d.ID(), result, dryRunSuffix(o.dryRun))
	}
	if o.prune {
		if failed > 0 {
			fmt.Fprintln(c.streams.Err, "error: not pruning: some documents failed to apply")
		} else if err := c.prune(ctx, cl, docs, o); err != nil {
			return err
		}
	}
	if o.wait && o.dryRun == "none" {
		if err := c.waitReady(ctx, cl, applied, o.timeout); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &ExitError{Code: 1, Msg: fmt.Sprintf("%d of %d objects failed to apply", failed, len(docs))}
	}
	return nil
}

// setNamespaces fills in the namespace of namespaced documents and refuses
// a document whose namespace contradicts an explicit -n.
func (c *cli) setNamespaces(docs []*manifest.Document) error {
	ns := c.ns()
	for _, d := range docs {
		if !d.Resource.Namespaced {
			continue
		}
		switch got := d.Object.GetNamespace(); {
		case got == "":
			d.Object.SetNamespace(ns)
		case c.g.namespace != "" && got != c.g.namespace:
			return fmt.Errorf("%s: %s is in namespace %q, but -n says %q", d.Source, d.ID(), got, c.g.namespace)
		}
	}
	return nil
}

// sortForApply applies what others refer to first (Namespaces, then Nodes,
// Overlays, Blueprints, Instances), keeping file order within a kind.
func sortForApply(docs []*manifest.Document) {
	rank := map[*resources.Resource]int{}
	for i, r := range resources.All {
		rank[r] = i
	}
	sort.SliceStable(docs, func(i, j int) bool { return rank[docs[i].Resource] < rank[docs[j].Resource] })
}

// desired is the manifest as sent, byte for byte what kubectl apply sends
// for the same document (kubectl's GetModifiedConfiguration): the user's
// fields through apimachinery's unstructured JSON codec (keys sorted,
// numbers as int64 or float64, a trailing newline), the namespace filled in,
// and in metadata.annotations (present even when otherwise empty) the same
// encoding of the manifest without that annotation. Being kubectl's bytes is
// what lets kubectl and l4mctl each find the other's apply unchanged.
func desired(d *manifest.Document) ([]byte, error) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(d.JSON); err != nil {
		return nil, fmt.Errorf("decode the manifest: %w", err)
	}
	if d.Resource.Namespaced {
		obj.SetNamespace(d.Object.GetNamespace())
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, LastAppliedAnnotation)
	obj.SetAnnotations(ann)
	original, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return nil, fmt.Errorf("encode the manifest: %w", err)
	}
	ann[LastAppliedAnnotation] = string(original)
	obj.SetAnnotations(ann)
	modified, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return nil, fmt.Errorf("encode the manifest: %w", err)
	}
	return modified, nil
}

// applyOne creates or three-way-merges one document and says which.
func (c *cli) applyOne(ctx context.Context, cl *client.Client, d *manifest.Document, dryRun string) (string, error) {
	modified, err := desired(d)
	if err != nil {
		return "", err
	}
	ns, name := d.Object.GetNamespace(), d.Object.GetName()
	cur, err := cl.Get(ctx, d.Resource, ns, name)
	if apierrors.IsNotFound(err) {
		if dryRun != "client" {
			if _, err := cl.CreateWith(ctx, d.Resource, ns, modified, client.WriteOptions{DryRun: dryRun == "server", FieldManager: clientSideManager}); err != nil {
				return "", err
			}
		}
		return "created", nil
	}
	if err != nil {
		return "", err
	}
	patch, err := threeWayPatch(cur, modified)
	if err != nil {
		return "", err
	}
	if string(patch) == "{}" {
		return "unchanged", nil
	}
	if dryRun != "client" {
		if _, err := cl.PatchWith(ctx, d.Resource, ns, name, "application/merge-patch+json", patch, client.WriteOptions{DryRun: dryRun == "server", FieldManager: clientSideManager}); err != nil {
			return "", err
		}
	}
	return "configured", nil
}

// applyServerSide sends one document as a server-side apply and says
// what kubectl says of it.
func (c *cli) applyServerSide(ctx context.Context, cl *client.Client, d *manifest.Document, o *applyOptions) (string, error) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(d.JSON); err != nil {
		return "", fmt.Errorf("decode the manifest: %w", err)
	}
	if d.Resource.Namespaced {
		obj.SetNamespace(d.Object.GetNamespace())
	}
	config, err := obj.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("encode the manifest: %w", err)
	}
	_, err = cl.Apply(ctx, d.Resource, obj.GetNamespace(), obj.GetName(), config, client.ApplyOptions{
		FieldManager: o.fieldManager, Force: o.forceConflicts, DryRun: o.dryRun == "server",
	})
	if isApplyConflict(err) && !o.forceConflicts {
		return "", fmt.Errorf("%w\n(to take these fields over, run again with --force-conflicts; to leave them to their manager, remove them from the file)", err)
	}
	if err != nil {
		return "", err
	}
	return "serverside-applied", nil
}

// isApplyConflict reports whether err is a server-side apply's conflict
// over fields other managers own (not a stale resourceVersion, which
// forcing would not help).
func isApplyConflict(err error) bool {
	if !apierrors.IsConflict(err) {
		return false
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return false
	}
	for _, c := range st.Status().Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict {
			return true
		}
	}
	return false
}

// threeWayPatch is kubectl's client-side apply for types without a patch
// strategy: a JSON merge patch from the last applied manifest (kubectl's
// annotation, else an older l4mctl's), the new one and the live object. An
// older l4mctl's annotation is removed, so one apply migrates an object.
func threeWayPatch(cur v1.Object, modified []byte) ([]byte, error) {
	current, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	original, _ := lastApplied(cur)
	if original == "" {
		original = "{}"
	}
	patch, err := jsonmergepatch.CreateThreeWayJSONMergePatch([]byte(original), modified, current)
	if err != nil {
		return nil, fmt.Errorf("compute the three-way merge: %w", err)
	}
	if _, legacy := cur.GetAnnotations()[LegacyLastAppliedAnnotation]; legacy && !setsAnnotation(modified, LegacyLastAppliedAnnotation) {
		if patch, err = removeAnnotation(patch, LegacyLastAppliedAnnotation); err != nil {
			return nil, fmt.Errorf("compute the three-way merge: %w", err)
		}
	}
	return patch, nil
}

// setsAnnotation says whether the manifest sets annotation key itself (then
// apply leaves it to the manifest, even the legacy last-applied one).
func setsAnnotation(manifest []byte, key string) bool {
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return false
	}
	_, ok := m.Metadata.Annotations[key]
	return ok
}

// removeAnnotation adds metadata.annotations[key]: null to a merge patch.
func removeAnnotation(patch []byte, key string) ([]byte, error) {
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.UseNumber() // the patch's other numbers go out as they came
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	md, _ := p["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		p["metadata"] = md
	}
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		md["annotations"] = ann
	}
	ann[key] = nil
	return json.Marshal(p)
}

// prune deletes objects an earlier apply made (they carry a last-applied
// annotation: kubectl's, which l4mctl writes too, or an older l4mctl's), that match the selector, and that no document names now.
func (c *cli) prune(ctx context.Context, cl *client.Client, docs []*manifest.Document, o *applyOptions) error {
	keep := map[string]bool{}
	namespaces := map[string]bool{c.ns(): true}
	for _, d := range docs {
		keep[d.Resource.Plural+"/"+d.Object.GetNamespace()+"/"+d.Object.GetName()] = true
		if d.Resource.Namespaced {
			namespaces[d.Object.GetNamespace()] = true
		}
	}
	for _, res := range resources.All {
		switch res.Kind {
		case "Namespace", "Event", "Token", "Lease":
			continue // never pruned: too much goes with them, they expire, they are credentials, or the nodes' own
		}
		scopes := []string{""}
		if res.Namespaced {
			scopes = scopes[:0]
			for ns := range namespaces {
				scopes = append(scopes, ns)
			}
			sort.Strings(scopes)
		}
		for _, ns := range scopes {
			rctx, cancel := c.requestContext(ctx)
			list, err := cl.List(rctx, res, ns, client.ListOptions{LabelSelector: o.selector})
			cancel()
			if err != nil {
				return fmt.Errorf("prune: list %s: %w", res.Plural, err)
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return err
			}
			for _, it := range items {
				obj := it.(v1.Object)
				if _, ok := lastApplied(obj); !ok || keep[res.Plural+"/"+obj.GetNamespace()+"/"+obj.GetName()] {
					continue
				}
				if o.dryRun != "client" {
					rctx, cancel := c.requestContext(ctx)
					_, _, err := cl.Delete(rctx, res, obj.GetNamespace(), obj.GetName(), o.dryRun == "server")
					cancel()
					if err != nil && !apierrors.IsNotFound(err) {
						return fmt.Errorf("prune %s.%s/%s: %w", res.Singular, v1.Group, obj.GetName(), err)
					}
				}
				fmt.Fprintf(c.streams.Out, "%s.%s/%s pruned%s\n", res.Singular, v1.Group, obj.GetName(), dryRunSuffix(o.dryRun))
			}
		}
	}
	return nil
}

// waitReady waits until every applied Instance's status has caught up with
// its spec (observedGeneration) and it is Ready, or it is Stopped as asked.
func (c *cli) waitReady(ctx context.Context, cl *client.Client, docs []*manifest.Document, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, d := range docs {
		if d.Resource.Kind != "Instance" {
			continue
		}
		var last *v1.Instance
		err := client.WaitFor(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			obj, err := cl.Get(ctx, d.Resource, d.Object.GetNamespace(), d.Object.GetName())
			if err != nil {
				return false, err
			}
			last = obj.(*v1.Instance)
			return instanceSettled(last), nil
		})
		if err != nil {
			why := "no status yet"
			if last != nil {
				why = describeProgress(last)
			}
			return &ExitError{Code: 1, Msg: fmt.Sprintf("timed out waiting for %s: %s", d.ID(), why)}
		}
		fmt.Fprintf(c.streams.Out, "%s %s\n", d.ID(), strings.ToLower(string(last.Status.Phase)))
	}
	return nil
}

func instanceSettled(in *v1.Instance) bool {
	if in.Status.ObservedGeneration < in.Generation {
		return false
	}
	if in.Spec.State == v1.StateStopped {
		return in.Status.Phase == v1.PhaseStopped
	}
	return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceReady)
}

func describeProgress(in *v1.Instance) string {
	if in.Status.ObservedGeneration < in.Generation {
		return fmt.Sprintf("status is for generation %d, spec is at %d", in.Status.ObservedGeneration, in.Generation)
	}
	if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceReady); c != nil {
		return fmt.Sprintf("Ready=%s (%s: %s)", c.Status, c.Reason, c.Message)
	}
	return "phase " + string(in.Status.Phase)
}
