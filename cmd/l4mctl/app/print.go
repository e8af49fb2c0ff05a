package app

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/tables"
)

// sortForDisplay puts objects in the order people read them: events
// oldest first, so the newest is at the bottom next to the prompt; other
// kinds keep the server's order (by name).
func sortForDisplay(objs []v1.Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, aok := objs[i].(*v1.Event)
		b, bok := objs[j].(*v1.Event)
		return aok && bok && tables.EventTime(a).Before(tables.EventTime(b))
	})
}

// tablePrinter writes aligned rows; the header goes out with the first row.
type tablePrinter struct {
	tw            *tabwriter.Writer
	res           *resources.Resource
	wide, allNS   bool
	noHeaders     bool
	headerWritten bool
}

func newTablePrinter(out io.Writer, res *resources.Resource, wide, allNS, noHeaders bool) *tablePrinter {
	return &tablePrinter{tw: tabwriter.NewWriter(out, 3, 0, 3, ' ', 0), res: res, wide: wide, allNS: allNS, noHeaders: noHeaders}
}

func (p *tablePrinter) header() {
	if p.headerWritten || p.noHeaders {
		return
	}
	p.headerWritten = true
	cols := tables.For(p.res.Kind)
	h := cols.Headers
	if p.wide {
		h = append(append([]string{}, h...), cols.Wide...)
	}
	if p.allNS && p.res.Namespaced {
		h = append([]string{"NAMESPACE"}, h...)
	}
	fmt.Fprintln(p.tw, strings.Join(h, "\t"))
}

func (p *tablePrinter) print(obj v1.Object) {
	p.header()
	cells, wide := tables.For(p.res.Kind).Row(obj, time.Now())
	if p.wide {
		cells = append(cells, wide...)
	}
	if p.allNS && p.res.Namespaced {
		cells = append([]string{obj.GetNamespace()}, cells...)
	}
	fmt.Fprintln(p.tw, strings.Join(cells, "\t"))
}

func (p *tablePrinter) flush() { p.tw.Flush() }
