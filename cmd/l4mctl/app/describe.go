package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/tables"
)

func (c *cli) newDescribeCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "describe KIND NAME",
		Short:             "Show an object's spec, status, conditions and events",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: c.completeKindThenNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDescribe(cmd.Context(), args[0], args[1])
		},
	}
}

func (c *cli) runDescribe(ctx context.Context, kind, name string) error {
	res, err := lookupKind(kind)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ns := c.ns()
	if !res.Namespaced {
		ns = ""
	}
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	obj, err := cl.Get(ctx, res, ns, name)
	if err != nil {
		return err
	}
	out := c.streams.Out
	fmt.Fprintf(out, "Name:         %s\n", obj.GetName())
	if res.Namespaced {
		fmt.Fprintf(out, "Namespace:    %s\n", obj.GetNamespace())
	}
	fmt.Fprintf(out, "Kind:         %s\n", res.Kind)
	fmt.Fprintf(out, "Labels:       %s\n", joinMap(obj.GetLabels()))
	ann := map[string]string{}
	for k, v := range obj.GetAnnotations() {
		if k != LastAppliedAnnotation && k != LegacyLastAppliedAnnotation {
			ann[k] = v
		}
	}
	fmt.Fprintf(out, "Annotations:  %s\n", joinMap(ann))
	fmt.Fprintf(out, "Created:      %s (%s ago)\n", obj.GetCreationTimestamp().Format(time.RFC3339), tables.Age(obj, time.Now()))
	if dt := obj.GetDeletionTimestamp(); dt != nil {
		fmt.Fprintf(out, "Deleting:     since %s, waiting on finalizers %s\n", dt.Format(time.RFC3339), strings.Join(obj.GetFinalizers(), ", "))
	}
	fmt.Fprintf(out, "Generation:   %d\n", obj.GetGeneration())

	// Spec and status as YAML, indented, conditions as a table.
	var m map[string]any
	data, _ := json.Marshal(obj)
	json.Unmarshal(data, &m)
	delete(m, "metadata")
	delete(m, "apiVersion")
	delete(m, "kind")
	var conds any
	if st, ok := m["status"].(map[string]any); ok {
		conds = st["conditions"]
		delete(st, "conditions")
		if res.Kind == "Node" {
			delete(st, "installations") // tables below
			delete(st, "overlays")
		}
	}
	for _, section := range []string{"spec", "status"} {
		if v, ok := m[section]; ok && !isEmptyMap(v) {
			fmt.Fprintf(out, "%s:\n", strings.ToUpper(section[:1])+section[1:])
			writeIndentedYAML(out, v)
			delete(m, section)
		}
	}
	if len(m) > 0 { // kinds without spec (Event)
		writeIndentedYAML(out, m)
	}
	if conds != nil {
		printConditions(out, obj)
	}
	switch o := obj.(type) {
	case *v1.Node:
		printNodeInstallations(out, o)
		printNodeOverlays(out, o)
	case *v1.Overlay:
		if err := c.printOverlayNodes(ctx, cl, o); err != nil {
			return err
		}
	case *v1.Installation:
		if err := c.printInstallationNodes(ctx, cl, o); err != nil {
			return err
		}
	}
	if res.Kind != "Event" {
		return c.printEvents(ctx, cl, res, obj)
	}
	return nil
}

func joinMap(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, "\n              ")
}

func writeIndentedYAML(out io.Writer, v any) {
	data, _ := json.Marshal(v)
	y, _ := yaml.JSONToYAML(data)
	for _, line := range strings.Split(strings.TrimRight(string(y), "\n"), "\n") {
		fmt.Fprintf(out, "  %s\n", line)
	}
}

func printConditions(out io.Writer, obj v1.Object) {
	data, _ := json.Marshal(obj)
	var s struct {
		Status struct {
			Conditions []struct {
				Type, Status, Reason, Message string
				LastTransitionTime            time.Time
			} `json:"conditions"`
		} `json:"status"`
	}
	json.Unmarshal(data, &s)
	fmt.Fprintln(out, "Conditions:")
	tw := tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range s.Status.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, duration.HumanDuration(time.Since(c.LastTransitionTime)), c.Message)
	}
	tw.Flush()
}

func (c *cli) printEvents(ctx context.Context, cl *client.Client, res *resources.Resource, obj v1.Object) error {
	events := resources.Events
	ns := obj.GetNamespace()
	if ns == "" {
		ns = v1.DefaultNamespace // events about Nodes live there
	}
	sel := fmt.Sprintf("involvedObject.kind=%s,involvedObject.name=%s", res.Kind, obj.GetName())
	items, _, err := listAll(ctx, cl, events, ns, client.ListOptions{FieldSelector: sel})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.streams.Out, "Events:       <none>")
		return nil
	}
	sortForDisplay(items)
	fmt.Fprintln(c.streams.Out, "Events:")
	tw := tabwriter.NewWriter(c.streams.Out, 3, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tREASON\tAGE\tFROM\tMESSAGE")
	for _, it := range items {
		e := it.(*v1.Event)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, duration.HumanDuration(time.Since(tables.EventTime(e))), e.Source.Component, e.Message)
	}
	tw.Flush()
	return nil
}

func isEmptyMap(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// installationRow is one Installation on one node, for describe's tables:
// first is the node's name (describe installation) or the Installation's
// (describe node); e is nil for a selected node that reported nothing.
type installationRow struct {
	first string
	e     *v1.NodeInstallation
	// note is added to the message (a node no longer selected).
	note string
}

func printInstallationTable(out io.Writer, firstHeader string, rows []installationRow) {
	tw := tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "  %s\tPHASE\tBUILDS\tDOWNLOADING\tLATEST-SEEN\tCHECKED\tREASON\tMESSAGE\n", firstHeader)
	for _, r := range rows {
		if r.e == nil {
			fmt.Fprintf(tw, "  %s\t<none>\t<none>\t<none>\t<none>\t<never>\t\t%s\n", r.first, joinNote("not reported yet", r.note))
			continue
		}
		checked := "<never>"
		if r.e.CheckedAt != nil {
			checked = duration.HumanDuration(time.Since(r.e.CheckedAt.Time)) + " ago"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.first, tables.OrNone(r.e.Phase), tables.OrNone(strings.Join(r.e.Builds, ",")),
			tables.OrNone(r.e.Downloading), tables.OrNone(r.e.LatestSeen), checked, r.e.Reason, joinNote(r.e.Message, r.note))
	}
	tw.Flush()
}

func joinNote(msg, note string) string {
	switch {
	case note == "":
		return msg
	case msg == "":
		return note
	}
	return msg + "; " + note
}

// printNodeInstallations is describe node's Installations section: the
// builds the node keeps and what it last said about each Installation.
func printNodeInstallations(out io.Writer, n *v1.Node) {
	if len(n.Status.Installations) == 0 {
		fmt.Fprintln(out, "Installations: <none>")
		return
	}
	fmt.Fprintln(out, "Installations:")
	rows := make([]installationRow, len(n.Status.Installations))
	for i := range n.Status.Installations {
		rows[i] = installationRow{first: n.Status.Installations[i].Name, e: &n.Status.Installations[i]}
	}
	printInstallationTable(out, "NAME", rows)
}

// printInstallationNodes is describe installation's Nodes section, from
// what each node reports in its status.installations: every node the
// Installation selects, and any other that still reports builds of it.
func (c *cli) printInstallationNodes(ctx context.Context, cl *client.Client, inst *v1.Installation) error {
	items, _, err := listAll(ctx, cl, resources.Nodes, "", client.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes for installation %s: %w", inst.Name, err)
	}
	sel := labels.SelectorFromSet(inst.Spec.NodeSelector)
	var rows []installationRow
	for _, it := range items {
		n := it.(*v1.Node)
		e := n.Status.NodeInstallationFor(inst.Name)
		selected := sel.Matches(labels.Set(n.Labels))
		switch {
		case selected:
			rows = append(rows, installationRow{first: n.Name, e: e})
		case e != nil:
			rows = append(rows, installationRow{first: n.Name, e: e, note: "not selected by nodeSelector"})
		}
	}
	out := c.streams.Out
	if len(rows) == 0 {
		fmt.Fprintln(out, "Nodes:        <none>")
		return nil
	}
	fmt.Fprintln(out, "Nodes:")
	printInstallationTable(out, "NODE", rows)
	return nil
}
