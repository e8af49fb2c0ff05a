package app

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/tables"
)

// overlayRow is one fetched Overlay on one node, for describe's tables:
// first is the node's name (describe overlay) or the Overlay's namespace/
// name (describe node); e is nil for a node that needs the Overlay and
// has not reported on it.
type overlayRow struct {
	first string
	e     *v1.NodeOverlay
	// note is added to the message (a node where no Instance uses it).
	note string
}

func printOverlayTable(out io.Writer, firstHeader string, rows []overlayRow) {
	tw := tabwriter.NewWriter(out, 3, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "  %s\tPHASE\tDIGEST\tHELD\tREASON\tMESSAGE\n", firstHeader)
	for _, r := range rows {
		if r.e == nil {
			fmt.Fprintf(tw, "  %s\t<none>\t<none>\t<none>\t\t%s\n", r.first, joinNote("not reported yet", r.note))
			continue
		}
		held := make([]string, len(r.e.Digests))
		for i, d := range r.e.Digests {
			held[i] = v1.ShortDigest(d)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.first, tables.OrNone(r.e.Phase), tables.OrNone(v1.ShortDigest(r.e.Digest)),
			tables.OrNone(strings.Join(held, ",")), r.e.Reason, joinNote(r.e.Message, r.note))
	}
	tw.Flush()
}

// printNodeOverlays is describe node's Overlays section: what the node
// fetched for its Instances, and what it last said about each.
func printNodeOverlays(out io.Writer, n *v1.Node) {
	if len(n.Status.Overlays) == 0 {
		fmt.Fprintln(out, "Overlays:     <none>")
		return
	}
	fmt.Fprintln(out, "Overlays:")
	rows := make([]overlayRow, len(n.Status.Overlays))
	for i := range n.Status.Overlays {
		e := &n.Status.Overlays[i]
		rows[i] = overlayRow{first: e.Namespace + "/" + e.Name, e: e}
	}
	printOverlayTable(out, "OVERLAY", rows)
}

// printOverlayNodes is describe overlay's source summary and Nodes
// section, from each Node's status.overlays: every node with an Instance
// whose Blueprint stacks the Overlay, and any other that still reports it.
func (c *cli) printOverlayNodes(ctx context.Context, cl *client.Client, ov *v1.Overlay) error {
	out := c.streams.Out
	src := &ov.Spec.Source
	fmt.Fprintf(out, "Source:       %s %s\n", tables.OrNone(src.Kind()), tables.SourceFrom(src))
	if src.Kind() == v1.SourcePath {
		fmt.Fprintln(out, "Nodes:        <none>: a path source is not fetched; each node mounts overlays/"+src.Path+" as it is")
		return nil
	}
	digest := tables.OrNone(ov.WantedDigest())
	if src.Kind() == v1.SourceFiles {
		digest += " (from the files' content)"
	}
	fmt.Fprintf(out, "Digest:       %s\n", digest)
	if ov.Status.Commit != "" {
		fmt.Fprintf(out, "Commit:       %s\n", ov.Status.Commit)
	}
	if len(ov.Status.Items) > 0 {
		printWorkshopItems(out, ov.Status.Items)
	}
	needing, err := nodesUsingOverlay(ctx, cl, ov)
	if err != nil {
		return err
	}
	items, _, err := listAll(ctx, cl, resources.Nodes, "", client.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes for overlay %s: %w", ov.Name, err)
	}
	var rows []overlayRow
	for _, it := range items {
		n := it.(*v1.Node)
		e := n.Status.NodeOverlayFor(ov.Namespace, ov.Name)
		switch {
		case needing[n.Name]:
			rows = append(rows, overlayRow{first: n.Name, e: e})
		case e != nil:
			rows = append(rows, overlayRow{first: n.Name, e: e, note: "no Instance bound here uses it"})
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "Nodes:        <none>")
		return nil
	}
	fmt.Fprintln(out, "Nodes:")
	printOverlayTable(out, "NODE", rows)
	return nil
}

// printWorkshopItems is describe overlay's Items section: each Workshop
// item as Steam last described it.
func printWorkshopItems(out io.Writer, items []v1.WorkshopItem) {
	fmt.Fprintln(out, "Items:")
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tTITLE\tSIZE\tUPDATED")
	for _, it := range items {
		updated := "<unknown>"
		if it.TimeUpdated != nil {
			updated = it.TimeUpdated.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it.ID, tables.OrNone(oneLine(it.Title)), humanBytes(it.Size), updated)
	}
	tw.Flush()
}

// humanBytes is a size as people read it (1.5 MiB).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// oneLine is s with control characters (a title's newlines, a terminal
// escape a tenant put in it) shown as spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// nodesUsingOverlay are the nodes with an Instance bound to them, neither
// stopped nor being deleted, whose Blueprint stacks ov (the nodes the
// Overlay's status counts).
func nodesUsingOverlay(ctx context.Context, cl *client.Client, ov *v1.Overlay) (map[string]bool, error) {
	bps, _, err := listAll(ctx, cl, resources.Blueprints, ov.Namespace, client.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list blueprints for overlay %s: %w", ov.Name, err)
	}
	stacking := map[string]bool{}
	for _, it := range bps {
		bp := it.(*v1.Blueprint)
		if slices.Contains(bp.Spec.Overlays, ov.Name) {
			stacking[bp.Name] = true
		}
	}
	needing := map[string]bool{}
	if len(stacking) == 0 {
		return needing, nil
	}
	ins, _, err := listAll(ctx, cl, resources.Instances, ov.Namespace, client.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list instances for overlay %s: %w", ov.Name, err)
	}
	for _, it := range ins {
		in := it.(*v1.Instance)
		if in.Spec.State == v1.StateStopped || in.DeletionTimestamp != nil {
			continue // as the overlay controller counts: a stopped game needs nothing fetched
		}
		node := in.Status.NodeName
		if node == "" {
			node = in.Spec.NodeName
		}
		if node != "" && stacking[in.Spec.BlueprintRef.Name] {
			needing[node] = true
		}
	}
	return needing, nil
}
