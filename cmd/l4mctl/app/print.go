package app

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// columns are one kind's table: headers, and the cells of one object. Wide
// columns come after the normal ones with -o wide.
type columns struct {
	headers, wide []string
	row           func(obj v1.Object, now time.Time) (cells, wide []string)
}

func age(obj v1.Object, now time.Time) string {
	t := obj.GetCreationTimestamp()
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// timeLeft is HumanDuration for a time still to come. HumanDuration floors,
// which suits an age but makes a token created a moment ago with --ttl 720h
// show "29d": the time left is rounded up to the precision shown (seconds
// under ten minutes, minutes above), so it reads 30d until a minute passes.
func timeLeft(d time.Duration) string {
	step := time.Minute
	if d < 10*time.Minute {
		step = time.Second
	}
	if r := d % step; r > 0 {
		d += step - r
	}
	return duration.HumanDuration(d)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// orDefault is s, or the API's default for it when unset (objects stored
// before defaulting filled the field).
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDefaultInt(n, def int32) int32 {
	if n == 0 {
		return def
	}
	return n
}

func conditionStatus(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "Unknown"
	}
	return string(c.Status)
}

var tables = map[string]columns{
	"Namespace": {
		headers: []string{"NAME", "STATUS", "AGE"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			ns := o.(*v1.Namespace)
			phase := string(ns.Status.Phase)
			if ns.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			return []string{ns.Name, orNone(phase), age(ns, now)}, nil
		},
	},
	"Node": {
		headers: []string{"NAME", "STATUS", "PORTS", "AGE"},
		// BUILDS: each Installation's ready builds, newest first, and the
		// hand-made installation/'s PatchVersion when there is one.
		wide: []string{"VERSION", "ADDRESSES", "BUILDS"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			n := o.(*v1.Node)
			status := "NotReady"
			switch conditionStatus(n.Status.Conditions, v1.ConditionReady) {
			case "True":
				status = "Ready"
			case "Unknown":
				status = "Unknown"
			}
			if n.Spec.Unschedulable {
				status += ",SchedulingDisabled"
			}
			return []string{n.Name, status, fmt.Sprintf("%d-%d", n.Spec.PortRange.Min, n.Spec.PortRange.Max), age(n, now)},
				[]string{orNone(n.Status.AgentVersion), orNone(strings.Join(n.Status.Addresses, ",")), orNone(nodeBuilds(n))}
		},
	},
	"Overlay": {
		// SOURCE is the kind of source; DIGEST the content the fleet
		// should run (12 hex digits); READY how many of the nodes that
		// need it have it ("-" for a path source: nothing is fetched).
		// FROM is where it comes from (sourceFrom).
		headers: []string{"NAME", "SOURCE", "DIGEST", "READY", "AGE"},
		wide:    []string{"FROM", "DESCRIPTION"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			ov := o.(*v1.Overlay)
			kind := ov.Spec.Source.Kind()
			ready := "-"
			if kind != v1.SourcePath {
				ready = fmt.Sprintf("%d/%d", ov.Status.Ready, ov.Status.Nodes)
			}
			return []string{ov.Name, orNone(kind), orNone(v1.ShortDigest(ov.WantedDigest())), ready, age(ov, now)},
				[]string{orNone(sourceFrom(&ov.Spec.Source)), orNone(ov.Spec.Description)}
		},
	},
	"Blueprint": {
		headers: []string{"NAME", "MAP", "MODE", "OVERLAYS", "AGE"},
		wide:    []string{"MAX-PLAYERS", "TICKRATE", "MEMORY"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			b := o.(*v1.Blueprint)
			mem := "<none>"
			if b.Spec.Resources.MemoryMax != nil {
				mem = b.Spec.Resources.MemoryMax.String()
			}
			return []string{b.Name, b.Spec.Game.Map, b.Spec.Game.Mode, orNone(strings.Join(b.Spec.Overlays, ",")), age(b, now)},
				[]string{strconv.Itoa(int(b.Spec.Game.MaxPlayers)), strconv.Itoa(int(b.Spec.Game.Tickrate)), mem}
		},
	},
	"Instance": {
		headers: []string{"NAME", "PHASE", "NODE", "ADDRESS", "PLAYERS", "MAP", "AGE"},
		// DESIRED is spec.state, what the user asked for; PHASE is what the
		// server does. Under STATE both read "Running" and looked the same.
		// BUILD is the Installation build the game runs (status.build).
		wide: []string{"BLUEPRINT", "DESIRED", "READY", "UNIT", "RESTARTS", "BUILD"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			in := o.(*v1.Instance)
			phase := string(in.Status.Phase)
			if in.DeletionTimestamp != nil {
				phase = string(v1.PhaseTerminating)
			}
			if phase == "" {
				phase = string(v1.PhasePending)
			}
			node := in.Status.NodeName
			if node == "" {
				node = in.Spec.NodeName
			}
			addr := "<none>"
			port := in.Status.Port
			if port == 0 {
				port = in.Spec.Port
			}
			if in.Status.Address != "" {
				addr = fmt.Sprintf("%s:%d", in.Status.Address, port)
			} else if port != 0 {
				addr = fmt.Sprintf(":%d", port)
			}
			players := "-"
			if in.Status.MaxPlayers > 0 {
				players = fmt.Sprintf("%d/%d", in.Status.Players, in.Status.MaxPlayers)
			}
			return []string{in.Name, phase, orNone(node), addr, players, orNone(in.Status.Map), age(in, now)},
				[]string{in.Spec.BlueprintRef.Name, desiredState(in), conditionStatus(in.Status.Conditions, v1.InstanceReady), orNone(in.Status.UnitName), strconv.Itoa(int(in.Status.Restarts)), orNone(in.Status.Build)}
		},
	},
	"Installation": {
		// BUILD is what the spec asks for (latest, or a pinned id);
		// LATEST the branch's newest build the nodes have seen; WANTED
		// what nodes install and Instances run.
		headers: []string{"NAME", "BRANCH", "BUILD", "LATEST", "WANTED", "READY", "DOWNLOADING", "FAILED", "AGE"},
		wide:    []string{"APPID", "CHECK-INTERVAL", "SELECTOR"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			in := o.(*v1.Installation)
			st := in.Status
			return []string{in.Name, orDefault(in.Spec.Branch, v1.DefaultBranch), orDefault(in.Spec.Build, v1.BuildLatest),
					orNone(st.LatestBuild), orNone(st.WantedBuild), fmt.Sprintf("%d/%d", st.Ready, st.Nodes),
					strconv.Itoa(int(st.Downloading)), strconv.Itoa(int(st.Failed)), age(in, now)},
				[]string{strconv.Itoa(int(orDefaultInt(in.Spec.AppID, v1.DefaultAppID))), orDefault(in.Spec.CheckInterval, v1.DefaultCheckInterval),
					orNone(labels.SelectorFromSet(in.Spec.NodeSelector).String())}
		},
	},
	"Lease": {
		// RENEWED is how long ago the holder last said it is alive.
		headers: []string{"NAME", "HOLDER", "RENEWED", "DURATION", "AGE"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			l := o.(*v1.Lease)
			renewed := "<never>"
			if r := l.Spec.RenewTime; r != nil {
				renewed = duration.HumanDuration(now.Sub(r.Time)) + " ago"
			}
			return []string{l.Name, orNone(l.Spec.HolderIdentity), renewed, fmt.Sprintf("%ds", l.Spec.LeaseDurationSeconds), age(l, now)}, nil
		},
	},
	"Token": {
		headers: []string{"NAME", "TYPE", "HOLDER", "ROLES", "USES LEFT", "EXPIRES", "AGE"},
		wide:    []string{"DESCRIPTION"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			t := o.(*v1.Token)
			holder := t.Spec.User
			if t.Spec.Type == v1.TokenNode {
				holder = "node:" + t.Spec.NodeName
			}
			var roles []string
			for _, r := range t.Spec.Roles {
				if r.Namespace != "" {
					roles = append(roles, r.Role+":"+r.Namespace)
				} else {
					roles = append(roles, r.Role)
				}
			}
			expires := "never"
			if e := t.Spec.ExpirationTime; e != nil {
				if e.Time.Before(now) {
					expires = "expired"
				} else {
					expires = "in " + timeLeft(e.Time.Sub(now))
				}
			}
			left := "-"
			if t.Spec.Type == v1.TokenJoin {
				allowed := max(t.Spec.Uses, 1)
				left = fmt.Sprintf("%d of %d", max(allowed-t.Status.Used, 0), allowed)
			}
			return []string{t.Name, string(t.Spec.Type), orNone(holder), orNone(strings.Join(roles, ",")), left, expires, age(t, now)},
				[]string{orNone(t.Spec.Description)}
		},
	},
	"Event": {
		headers: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"},
		row: func(o v1.Object, now time.Time) ([]string, []string) {
			e := o.(*v1.Event)
			last := "<unknown>"
			if t := eventTime(e); !t.IsZero() {
				last = duration.HumanDuration(now.Sub(t))
			}
			obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
			msg := e.Message
			if e.Count > 1 {
				msg = fmt.Sprintf("%s (x%d)", msg, e.Count)
			}
			return []string{last, e.Type, e.Reason, obj, msg}, nil
		},
	},
}

// desiredState is spec.state, with the API's default spelled out.
func desiredState(in *v1.Instance) string {
	if in.Spec.State == "" {
		return string(v1.StateRunning)
	}
	return string(in.Spec.State)
}

// eventTime is when an event last happened: lastTimestamp, else
// firstTimestamp, else when it was recorded.
func eventTime(e *v1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// sortForDisplay puts objects in the order people read them: events
// oldest first, so the newest is at the bottom next to the prompt; other
// kinds keep the server's order (by name).
func sortForDisplay(objs []v1.Object) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, aok := objs[i].(*v1.Event)
		b, bok := objs[j].(*v1.Event)
		return aok && bok && eventTime(a).Before(eventTime(b))
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

// columnsFor falls back to NAME and AGE for a kind without a table.
func columnsFor(kind string) columns {
	if c, ok := tables[kind]; ok {
		return c
	}
	return columns{headers: []string{"NAME", "AGE"}, row: func(o v1.Object, now time.Time) ([]string, []string) {
		return []string{o.GetName(), age(o, now)}, nil
	}}
}

func (p *tablePrinter) header() {
	if p.headerWritten || p.noHeaders {
		return
	}
	p.headerWritten = true
	cols := columnsFor(p.res.Kind)
	h := cols.headers
	if p.wide {
		h = append(append([]string{}, h...), cols.wide...)
	}
	if p.allNS && p.res.Namespaced {
		h = append([]string{"NAMESPACE"}, h...)
	}
	fmt.Fprintln(p.tw, strings.Join(h, "\t"))
}

func (p *tablePrinter) print(obj v1.Object) {
	p.header()
	cells, wide := columnsFor(p.res.Kind).row(obj, time.Now())
	if p.wide {
		cells = append(cells, wide...)
	}
	if p.allNS && p.res.Namespaced {
		cells = append([]string{obj.GetNamespace()}, cells...)
	}
	fmt.Fprintln(p.tw, strings.Join(cells, "\t"))
}

func (p *tablePrinter) flush() { p.tw.Flush() }

// nodeBuilds is the BUILDS column: "l4d2:200,100;installation/:2.2.4.3".
func nodeBuilds(n *v1.Node) string {
	var parts []string
	for _, ni := range n.Status.Installations {
		if len(ni.Builds) > 0 {
			parts = append(parts, ni.Name+":"+strings.Join(ni.Builds, ","))
		}
	}
	if n.Status.Installation.Build != "" {
		parts = append(parts, "installation/:"+n.Status.Installation.Build)
	}
	return strings.Join(parts, ";")
}

// sourceFrom says where an Overlay's files come from, in one cell: the
// path, the archive's URL, the repository's URL@ref, the Workshop ids (the
// first few of each list, then how many more), or the first inline file's
// path and how many more.
func sourceFrom(src *v1.OverlaySource) string {
	switch src.Kind() {
	case v1.SourcePath:
		return src.Path
	case v1.SourceArchive:
		return src.Archive.URL
	case v1.SourceGit:
		return src.Git.URL + "@" + src.Git.Ref
	case v1.SourceWorkshop:
		var parts []string
		for _, l := range []struct {
			name string
			ids  []string
		}{{"items", src.Workshop.Items}, {"collections", src.Workshop.Collections}} {
			if len(l.ids) > 0 {
				parts = append(parts, l.name+":"+firstAndMore(l.ids, 3))
			}
		}
		return strings.Join(parts, ";")
	case v1.SourceFiles:
		paths := make([]string, 0, len(src.Files))
		for p := range src.Files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		return firstAndMore(paths, 1)
	}
	return ""
}

// firstAndMore is the first n of list, comma-separated, and "+N" for the
// rest.
func firstAndMore(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ",")
	}
	return strings.Join(list[:n], ",") + ",+" + strconv.Itoa(len(list)-n)
}
