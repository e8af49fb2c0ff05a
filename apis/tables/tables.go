// Package tables holds the columns each kind is shown with: by l4mctl get,
// and by the API server's Table responses (kubectl get), so both print the
// same columns from one place.
package tables

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Columns are one kind's table: headers, and the cells of one object. Wide
// columns come after the normal ones (-o wide; priority 1 in a Table).
type Columns struct {
	Headers, Wide []string
	Row           func(obj v1.Object, now time.Time) (cells, wide []string)
}

// Age is how long ago obj was created, as kubectl shows it.
func Age(obj v1.Object, now time.Time) string {
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

// OrNone is s, or "<none>" for an empty cell.
func OrNone(s string) string {
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

var tables = map[string]Columns{
	"Namespace": {
		Headers: []string{"NAME", "STATUS", "AGE"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			ns := o.(*v1.Namespace)
			phase := string(ns.Status.Phase)
			if ns.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			return []string{ns.Name, OrNone(phase), Age(ns, now)}, nil
		},
	},
	"Node": {
		Headers: []string{"NAME", "STATUS", "PORTS", "AGE"},
		// BUILDS: each Installation's ready builds, newest first, and the
		// hand-made installation/'s PatchVersion when there is one.
		Wide: []string{"VERSION", "ADDRESSES", "BUILDS"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
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
			return []string{n.Name, status, fmt.Sprintf("%d-%d", n.Spec.PortRange.Min, n.Spec.PortRange.Max), Age(n, now)},
				[]string{OrNone(n.Status.AgentVersion), OrNone(strings.Join(n.Status.Addresses, ",")), OrNone(nodeBuilds(n))}
		},
	},
	"Overlay": {
		// SOURCE is the kind of source; DIGEST the content the fleet
		// should run (12 hex digits); READY how many of the nodes that
		// need it have it ("-" for a path source: nothing is fetched).
		// FROM is where it comes from (sourceFrom).
		Headers: []string{"NAME", "SOURCE", "DIGEST", "READY", "AGE"},
		Wide:    []string{"FROM", "DESCRIPTION"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			ov := o.(*v1.Overlay)
			kind := ov.Spec.Source.Kind()
			ready := "-"
			if kind != v1.SourcePath {
				ready = fmt.Sprintf("%d/%d", ov.Status.Ready, ov.Status.Nodes)
			}
			return []string{ov.Name, OrNone(kind), OrNone(v1.ShortDigest(ov.WantedDigest())), ready, Age(ov, now)},
				[]string{OrNone(SourceFrom(&ov.Spec.Source)), OrNone(ov.Spec.Description)}
		},
	},
	"Blueprint": {
		Headers: []string{"NAME", "MAP", "MODE", "OVERLAYS", "AGE"},
		Wide:    []string{"MAX-PLAYERS", "TICKRATE", "MEMORY"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			b := o.(*v1.Blueprint)
			mem := "<none>"
			if b.Spec.Resources.MemoryMax != nil {
				mem = b.Spec.Resources.MemoryMax.String()
			}
			return []string{b.Name, b.Spec.Game.Map, b.Spec.Game.Mode, OrNone(strings.Join(b.Spec.Overlays, ",")), Age(b, now)},
				[]string{strconv.Itoa(int(b.Spec.Game.MaxPlayers)), strconv.Itoa(int(b.Spec.Game.Tickrate)), mem}
		},
	},
	"Instance": {
		Headers: []string{"NAME", "PHASE", "NODE", "ADDRESS", "PLAYERS", "MAP", "AGE"},
		// DESIRED is spec.state, what the user asked for; PHASE is what the
		// server does. Under STATE both read "Running" and looked the same.
		// BUILD is the Installation build the game runs (status.build).
		Wide: []string{"BLUEPRINT", "DESIRED", "READY", "UNIT", "RESTARTS", "BUILD"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
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
			return []string{in.Name, phase, OrNone(node), addr, players, OrNone(in.Status.Map), Age(in, now)},
				[]string{in.Spec.BlueprintRef.Name, desiredState(in), conditionStatus(in.Status.Conditions, v1.InstanceReady), OrNone(in.Status.UnitName), strconv.Itoa(int(in.Status.Restarts)), OrNone(in.Status.Build)}
		},
	},
	"Installation": {
		// BUILD is what the spec asks for (latest, or a pinned id);
		// LATEST the branch's newest build the nodes have seen; WANTED
		// what nodes install and Instances run.
		Headers: []string{"NAME", "BRANCH", "BUILD", "LATEST", "WANTED", "READY", "DOWNLOADING", "FAILED", "AGE"},
		Wide:    []string{"APPID", "CHECK-INTERVAL", "SELECTOR"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			in := o.(*v1.Installation)
			st := in.Status
			return []string{in.Name, orDefault(in.Spec.Branch, v1.DefaultBranch), orDefault(in.Spec.Build, v1.BuildLatest),
					OrNone(st.LatestBuild), OrNone(st.WantedBuild), fmt.Sprintf("%d/%d", st.Ready, st.Nodes),
					strconv.Itoa(int(st.Downloading)), strconv.Itoa(int(st.Failed)), Age(in, now)},
				[]string{strconv.Itoa(int(orDefaultInt(in.Spec.AppID, v1.DefaultAppID))), orDefault(in.Spec.CheckInterval, v1.DefaultCheckInterval),
					OrNone(labels.SelectorFromSet(in.Spec.NodeSelector).String())}
		},
	},
	"Lease": {
		// RENEWED is how long ago the holder last said it is alive.
		Headers: []string{"NAME", "HOLDER", "RENEWED", "DURATION", "AGE"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			l := o.(*v1.Lease)
			renewed := "<never>"
			if r := l.Spec.RenewTime; r != nil {
				renewed = duration.HumanDuration(now.Sub(r.Time)) + " ago"
			}
			return []string{l.Name, OrNone(l.Spec.HolderIdentity), renewed, fmt.Sprintf("%ds", l.Spec.LeaseDurationSeconds), Age(l, now)}, nil
		},
	},
	"Token": {
		Headers: []string{"NAME", "TYPE", "HOLDER", "ROLES", "USES LEFT", "EXPIRES", "AGE"},
		Wide:    []string{"DESCRIPTION"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
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
			return []string{t.Name, string(t.Spec.Type), OrNone(holder), OrNone(strings.Join(roles, ",")), left, expires, Age(t, now)},
				[]string{OrNone(t.Spec.Description)}
		},
	},
	"Event": {
		Headers: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"},
		Row: func(o v1.Object, now time.Time) ([]string, []string) {
			e := o.(*v1.Event)
			last := "<unknown>"
			if t := EventTime(e); !t.IsZero() {
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

// EventTime is when an event last happened: lastTimestamp, else
// firstTimestamp, else when it was recorded.
func EventTime(e *v1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

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

// SourceFrom says where an Overlay's files come from, in one cell: the
// path, the archive's URL, the repository's URL@ref, the Workshop ids (the
// first few of each list, then how many more), or the first inline file's
// path and how many more.
func SourceFrom(src *v1.OverlaySource) string {
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

// For is kind's columns; a kind without a table of its own has NAME and
// AGE.
func For(kind string) Columns {
	if c, ok := tables[kind]; ok {
		return c
	}
	return Columns{Headers: []string{"NAME", "AGE"}, Row: func(o v1.Object, now time.Time) ([]string, []string) {
		return []string{o.GetName(), Age(o, now)}, nil
	}}
}

// TableOptions are what a Table request asks for besides the rows.
type TableOptions struct {
	// APIVersion is the Table's: meta.k8s.io/v1 (or v1beta1 for older
	// kubectl; the same shape).
	APIVersion string
	// Include is what each row carries of its object: Metadata (the
	// default; kubectl reads namespaces and labels from it), Object, None.
	Include metav1.IncludeObjectPolicy
}

// ToTable is objs, all of kind, as a metav1.Table with the columns
// l4mctl get prints: the wide ones at priority 1, so kubectl shows them
// with -o wide. now is the time the AGE column counts to.
func ToTable(kind string, objs []v1.Object, now time.Time, o TableOptions) *metav1.Table {
	cols := For(kind)
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: o.APIVersion}}
	if t.APIVersion == "" {
		t.APIVersion = metav1.SchemeGroupVersion.String()
	}
	for i, h := range append(append([]string{}, cols.Headers...), cols.Wide...) {
		def := metav1.TableColumnDefinition{Name: h, Type: "string"}
		if i == 0 && h == "NAME" {
			def.Format = "name"
		}
		if i >= len(cols.Headers) {
			def.Priority = 1
		}
		t.ColumnDefinitions = append(t.ColumnDefinitions, def)
	}
	t.Rows = make([]metav1.TableRow, 0, len(objs))
	for _, obj := range objs {
		cells, wide := cols.Row(obj, now)
		row := metav1.TableRow{Cells: make([]any, 0, len(cells)+len(wide))}
		for _, c := range append(cells, wide...) {
			row.Cells = append(row.Cells, c)
		}
		switch o.Include {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			row.Object.Object = obj
		default:
			m := &metav1.PartialObjectMetadata{
				TypeMeta:   metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: t.APIVersion},
				ObjectMeta: *objectMeta(obj),
			}
			row.Object.Object = m
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// objectMeta is obj's metadata without managed fields, which a Table row
// has no use for.
func objectMeta(obj v1.Object) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{
		Name: obj.GetName(), Namespace: obj.GetNamespace(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		Generation: obj.GetGeneration(), CreationTimestamp: obj.GetCreationTimestamp(), DeletionTimestamp: obj.GetDeletionTimestamp(),
		Labels: obj.GetLabels(), Annotations: obj.GetAnnotations(), Finalizers: obj.GetFinalizers(), OwnerReferences: obj.GetOwnerReferences(),
	}
}
