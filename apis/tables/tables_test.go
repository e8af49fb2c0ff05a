package tables

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

func TestToTable(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-1", CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Hour))},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27114}}}
	tab := ToTable("Node", []v1.Object{n}, now, TableOptions{Include: metav1.IncludeObject})
	if tab.Kind != "Table" || tab.APIVersion != "meta.k8s.io/v1" {
		t.Fatalf("type %s/%s", tab.APIVersion, tab.Kind)
	}
	var defs []string
	for _, d := range tab.ColumnDefinitions {
		defs = append(defs, fmt.Sprintf("%s:%d", d.Name, d.Priority))
	}
	if got, want := strings.Join(defs, " "), "NAME:0 STATUS:0 PORTS:0 AGE:0 VERSION:1 ADDRESSES:1 BUILDS:1"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	// No Ready condition yet: Unknown, as l4mctl get shows it.
	if cells := tab.Rows[0].Cells; cells[0] != "host-1" || cells[1] != "Unknown" || cells[2] != "27015-27114" || cells[3] != "3h" || len(cells) != 7 {
		t.Fatalf("cells %v", cells)
	}
	if tab.Rows[0].Object.Object != n {
		t.Fatal("includeObject=Object: the row does not carry the Node")
	}
	// A kind without a table of its own: NAME and AGE.
	if c := For("Gadget"); len(c.Headers) != 2 || c.Headers[0] != "NAME" || c.Headers[1] != "AGE" {
		t.Fatalf("fallback columns %v", c.Headers)
	}
}
