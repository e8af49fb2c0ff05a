package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// newEnvWith is newEnv over a server started with opts.
func newEnvWith(t *testing.T, opts server.Options) *env {
	t.Setenv("L4MCONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	srv, cl := servertest.StartWith(t, opts)
	return &env{t: t, srv: srv, cl: cl, dir: t.TempDir()}
}

// `logs --help` said "(default: all) (default -1)". No flag of any command
// may show two defaults; the --tail line shows the one it has, -1, and
// what it means.
func TestHelpShowsOneDefaultPerFlag(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("logs", "--help")
	var tail string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "--tail") {
			tail = l
		}
	}
	if strings.Count(tail, "(default") != 1 || !strings.Contains(tail, "(default -1)") || !strings.Contains(tail, "-1 for all") {
		t.Fatalf("logs --help, the --tail line: %q", tail)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			fs := pflag.NewFlagSet("", pflag.ContinueOnError)
			fs.AddFlag(f)
			if u := fs.FlagUsages(); strings.Count(u, "(default") > 1 {
				t.Errorf("%s: %s", c.CommandPath(), strings.TrimSpace(u))
			}
		}
		c.LocalFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &syncBuffer{}, Err: &syncBuffer{}}))
}

// get events lists in time order, oldest first, so the newest is at the
// bottom next to the prompt; an event without lastTimestamp sorts by its
// firstTimestamp. Names are chosen so that name order is not time order.
func TestGetEventsOldestFirst(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d).Truncate(time.Second)) }
	for _, ev := range []*v1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "srv1.a"}, Reason: "Started", LastTimestamp: at(0), FirstTimestamp: at(3 * time.Hour)},
		{ObjectMeta: metav1.ObjectMeta{Name: "srv1.b"}, Reason: "Scheduled", LastTimestamp: at(2 * time.Hour), FirstTimestamp: at(2 * time.Hour)},
		{ObjectMeta: metav1.ObjectMeta{Name: "srv1.c"}, Reason: "Pulled", FirstTimestamp: at(time.Hour)},
	} {
		ev.Namespace = "default"
		ev.Type = v1.EventTypeNormal
		ev.InvolvedObject = v1.ObjectReference{Kind: "Instance", Name: "srv1"}
		ev.Message = ev.Reason
		if _, err := e.cl.Create(context.Background(), events, ev, false); err != nil {
			t.Fatal(err)
		}
	}
	var reasons []string
	for _, l := range strings.Split(strings.TrimSpace(e.mustRun("get", "events", "--no-headers")), "\n") {
		reasons = append(reasons, strings.Fields(l)[2])
	}
	if got := strings.Join(reasons, ","); got != "Scheduled,Pulled,Started" {
		t.Fatalf("get events: reasons in order %s, want Scheduled,Pulled,Started", got)
	}
}

// -o wide had PHASE and STATE side by side, both "Running". The wide column
// is spec.state, so it is headed DESIRED, and it shows what the user asked
// for, which can differ from the phase.
func TestGetWideShowsDesiredState(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", fleet))
	ctx := context.Background()
	for _, name := range []string{"srv1", "srv2"} {
		in := e.get(instances, name).(*v1.Instance)
		in.Status.Phase = v1.PhaseRunning
		if _, err := e.cl.UpdateStatus(ctx, instances, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cl.Patch(ctx, instances, "default", "srv2", server.MergePatchType, []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("get", "instances", "-o", "wide")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := strings.Fields(lines[0])
	if strings.Contains(lines[0], "STATE") || !strings.Contains(lines[0], "DESIRED") {
		t.Fatalf("wide header %q: want DESIRED, not STATE", lines[0])
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	want := map[string][2]string{"srv1": {"Running", "Running"}, "srv2": {"Running", "Stopped"}}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if w := want[f[0]]; f[col["PHASE"]] != w[0] || f[col["DESIRED"]] != w[1] {
			t.Fatalf("%s: PHASE %s DESIRED %s, want %v\n%s", f[0], f[col["PHASE"]], f[col["DESIRED"]], w, out)
		}
	}
}

// A token just created with --ttl 720h expires "in 30d", not "in 29d":
// the time left is rounded up to what the column shows.
func TestTokenListShowsTheTTLGiven(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ ttl, want string }{{"720h", "in 30d"}, {"24h", "in 24h"}, {"1h", "in 60m"}} {
		_, errOut, err := e.run("", "token", "create", "user", "ttl-"+tc.ttl, "--role", "viewer:default", "--ttl", tc.ttl)
		if err != nil {
			t.Fatalf("token create --ttl %s: %v %s", tc.ttl, err, errOut)
		}
		list := e.mustRun("token", "list")
		found := false
		for _, l := range strings.Split(list, "\n") {
			if strings.Contains(l, "ttl-"+tc.ttl+" ") {
				found = true
				if !strings.Contains(l, tc.want+" ") {
					t.Errorf("--ttl %s: want %q in %q", tc.ttl, tc.want, l)
				}
			}
		}
		if !found {
			t.Fatalf("token ttl-%s not listed:\n%s", tc.ttl, list)
		}
	}
}

// An unknown field is reported at its own line of the file, not at the
// first line of its document.
func TestApplyUnknownFieldAtItsLine(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet+`---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: srv3
spec:
  blueprintRef: {name: coop}
  nodeName: node-1
  prot: 27020
`)
	_, _, err := e.run("", "apply", "-f", f)
	// The typo is the 9th line after the fleet's.
	want := fmt.Sprintf(`%s:%d: Instance "srv3": unknown field "spec.prot"`, f, strings.Count(fleet, "\n")+9)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("apply with a typo: want %q in %v", want, err)
	}
}

// The namespace quota is a hard cap: 200 applies from 16 clients at once
// against a cap of 50 leave exactly 50 Instances, and every other apply is
// refused naming the quota.
func TestNamespaceQuotaIsExactUnderConcurrentApplies(t *testing.T) {
	const limit, applies, workers = 50, 200, 16
	e := newEnvWith(t, server.Options{MaxObjectsPerNamespace: limit})
	files := make(chan string, applies)
	for i := 0; i < applies; i++ {
		files <- e.write(fmt.Sprintf("srv-%03d.yaml", i), fmt.Sprintf("apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: srv-%03d}\nspec: {blueprintRef: {name: coop}}\n", i))
	}
	close(files)
	var mu sync.Mutex
	created, refused := 0, 0
	var other []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range files {
				out, errOut, err := e.run("", "apply", "-f", f)
				mu.Lock()
				switch {
				case err == nil && strings.Contains(out, "created"):
					created++
				case err != nil && strings.Contains(errOut, "exceeded quota"):
					refused++
					// The count named is the cap's, never past it.
					if !strings.Contains(errOut, `exceeded quota: namespace "default" already holds 50 instances (the limit)`) {
						other = append(other, errOut)
					}
				default:
					other = append(other, fmt.Sprintf("%s: %v %s %s", f, err, out, errOut))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stored := strings.Count(e.mustRun("get", "instances", "-o", "name"), "\n")
	if stored != limit || created != limit || refused != applies-limit {
		t.Fatalf("cap %d: %d stored, %d applies created, %d refused", limit, stored, created, refused)
	}
	if len(other) > 0 {
		t.Fatalf("unexpected results:\n%s", strings.Join(other, "\n"))
	}
}
