package server_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
)

// TestHostileInput sends each kind of hostile value through the real API,
// as a create and as an update of a good object, and checks that it is
// refused with the field named and that etcd did not change.
func TestHostileInput(t *testing.T) {
	_, admin := servertest.Start(t)
	ctx := context.Background()
	overlays := resources.Overlays
	good := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: "default"}}
	stored, err := admin.Create(ctx, blueprints, good, false)
	if err != nil {
		t.Fatal(err)
	}
	goodInst, err := admin.Create(ctx, instances, instance("good"), false)
	if err != nil {
		t.Fatal(err)
	}
	bp := func(mut func(*v1.BlueprintSpec)) *v1.Blueprint {
		b := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "hostile", Namespace: "default"}}
		mut(&b.Spec)
		return b
	}
	in := func(mut func(*v1.InstanceSpec)) *v1.Instance {
		i := instance("hostile")
		mut(&i.Spec)
		return i
	}
	ov := func(path string) *v1.Overlay {
		return &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "hostile", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: path}}}
	}
	cases := []struct {
		name  string
		obj   v1.Object
		field string
	}{
		{"cvar value newline injects rcon_password", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "sv_tags", Value: "x\nrcon_password owned"}} }), "spec.cvars[0].value"},
		{"cvar value quote ends the string", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "sv_tags", Value: `x" ; exec evil "`}} }), "spec.cvars[0].value"},
		{"cvar value semicolon chains a command", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "sv_tags", Value: "x;quit"}} }), "spec.cvars[0].value"},
		{"cvar value control character", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "sv_tags", Value: "x\x1b[2J"}} }), "spec.cvars[0].value"},
		{"cvar key with a space and a command", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "sv_tags 1\nquit", Value: "1"}} }), "spec.cvars[0].name"},
		{"cvar key exec", bp(func(s *v1.BlueprintSpec) { s.Cvars = []v1.Cvar{{Name: "exec", Value: "/etc/passwd"}} }), "spec.cvars[0].name"},
		{"cvar key con_logfile writes files", bp(func(s *v1.BlueprintSpec) {
			s.Cvars = []v1.Cvar{{Name: "con_logfile", Value: "../../../../etc/cron.d/x"}}
		}), "spec.cvars[0].name"},
		{"srcds +exec of an absolute path", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+exec", "/etc/shadow"} }), "spec.args[1]"},
		{"srcds +exec escaping the tree", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+exec", "../../../../root/x.cfg"} }), "spec.args[1]"},
		{"srcds takes over the port", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+hostport", "22"} }), "spec.args[0]"},
		{"srcds shell metacharacters naming a path", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"$(cat /etc/passwd)/../x"} }), "spec.args[0]"},
		{"srcds +exec inside one argument", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+sv_lan", "0", "+exec evil.cfg"} }), "spec.args[2]"},
		{"srcds command substitution", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+sv_tags", "$(id)"} }), "spec.args[1]"},
		{"srcds argument with a newline", bp(func(s *v1.BlueprintSpec) { s.Args = []string{"+map\nc1m1"} }), "spec.args[0]"},
		{"overlay name that is a path", bp(func(s *v1.BlueprintSpec) { s.Overlays = []string{"../../etc"} }), "spec.overlays[0]"},
		{"map name escaping the maps dir", bp(func(s *v1.BlueprintSpec) { s.Game.Map = "../../../etc/passwd" }), "spec.game.map"},
		{"hostname newline", in(func(s *v1.InstanceSpec) { s.Hostname = "srv\nrcon_password x" }), "spec.hostname"},
		{"hostname quote", in(func(s *v1.InstanceSpec) { s.Hostname = `srv"; quit; "` }), "spec.hostname"},
		{"hostname NUL", in(func(s *v1.InstanceSpec) { s.Hostname = "srv\x00" }), "spec.hostname"},
		{"instance name escaping a directory", &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "../../etc", Namespace: "default"}, Spec: instance("x").Spec}, "metadata.name"},
		{"instance name breaking a unit name", &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "a.service\nExecStart=/bin/sh", Namespace: "default"}, Spec: instance("x").Spec}, "metadata.name"},
		{"namespace escaping a directory", &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}, Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "../x"}}}, "spec.blueprintRef.name"},
		{"node name with a slash", in(func(s *v1.InstanceSpec) { s.NodeName = "a/../../b" }), "spec.nodeName"},
		{"overlay absolute path", ov("/etc"), "spec.source.path"},
		{"overlay dot-dot", ov("maps/../../../etc"), "spec.source.path"},
		{"overlay empty component", ov("maps//x"), "spec.source.path"},
		{"overlay NUL", ov("maps\x00/x"), "spec.source.path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := blueprints
			switch tc.obj.(type) {
			case *v1.Instance:
				res = instances
			case *v1.Overlay:
				res = overlays
			}
			before, _ := admin.List(ctx, res, "", client.ListOptions{})
			_, err := admin.Create(ctx, res, tc.obj, false)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("create: want 422 naming %s, got %v", tc.field, err)
			}
			after, _ := admin.List(ctx, res, "", client.ListOptions{})
			if before.GetResourceVersion() != after.GetResourceVersion() {
				t.Fatalf("etcd changed: revision %s -> %s", before.GetResourceVersion(), after.GetResourceVersion())
			}
			// The same value as an update of a good object is refused too.
			var target v1.Object
			switch o := tc.obj.(type) {
			case *v1.Blueprint:
				b := stored.DeepCopyObject().(*v1.Blueprint)
				b.Spec = o.Spec
				target = b
			case *v1.Instance:
				if o.Name != "hostile" {
					return // a name cannot be changed by an update
				}
				i := goodInst.DeepCopyObject().(*v1.Instance)
				i.Spec = o.Spec
				target = i
			default:
				return
			}
			if _, err := admin.Update(ctx, res, target, false); !apierrors.IsInvalid(err) {
				t.Fatalf("update: want 422, got %v", err)
			}
			cur, _ := admin.Get(ctx, res, "default", target.GetName())
			if cur.GetResourceVersion() != target.GetResourceVersion() {
				t.Fatal("the refused update changed the object")
			}
		})
	}
}
