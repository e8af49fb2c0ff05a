package validation

import (
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// FuzzOverlayPath: whatever the string, an accepted reference stays below
// the root when joined to it, and is relative, clean and printable.
func FuzzOverlayPath(f *testing.F) {
	for _, s := range []string{"mods", "maps/custom", "../x", "/etc", "a//b", "a/./b", "a/..", "..", ".", "a\x00b", "a\\..\\b", "é/ü", strings.Repeat("a/", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		errs := ValidateOverlayPath(ref, field.NewPath("p"))
		if len(errs) > 0 {
			if !strings.HasPrefix(errs[0].Field, "p") {
				t.Fatalf("error does not name the field: %v", errs)
			}
			return
		}
		root := "/var/lib/left4me/overlays"
		joined := filepath.Join(root, ref)
		if joined == root || !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("accepted %q escapes the root: %s", ref, joined)
		}
		if filepath.Clean(ref) != ref || filepath.IsAbs(ref) || hasControl(ref) {
			t.Fatalf("accepted %q is not a clean relative printable path", ref)
		}
	})
}

// FuzzServerCfgLine: an accepted cvar renders as exactly one server.cfg
// line with one command: `name "value"`.
func FuzzServerCfgLine(f *testing.F) {
	f.Add("sv_alltalk", "1")
	f.Add("hostname", "x")
	f.Add("sv_tags", "a\nrcon_password x")
	f.Add("a", `b" ; quit "`)
	f.Add("sm_cvar.x", "a b c")
	f.Fuzz(func(t *testing.T, name, value string) {
		b := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}, Spec: v1.BlueprintSpec{Cvars: []v1.Cvar{{Name: name, Value: value}}}}
		Default(b)
		if errs := Validate(b); len(errs) > 0 {
			return
		}
		line := name + ` "` + value + `"`
		if strings.ContainsAny(line, "\n\r;\x00") || strings.Count(line, `"`) != 2 || strings.Contains(name, " ") || hasControl(line) {
			t.Fatalf("accepted cvar renders an unsafe line: %q", line)
		}
		if forbiddenCommand(name) != "" {
			t.Fatalf("accepted reserved cvar %q", name)
		}
	})
}

// FuzzArgs: an accepted srcds argument holds no shell metacharacter, and
// none of the words srcds_run splits it into names an absolute path, climbs
// out with "..", or is a command or flag the node owns or forbids.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{"-nohltv", "+exec", "/etc/passwd", "../x", "+hostport", "a/../../b", "~/x", "+sv_lan",
		"+exec evil.cfg", " +rcon_password", "+logaddress_add 203.0.113.9:27500", "-ip 1.2.3.4", "$(id)", "+sv_lan 0 +Exec x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		if errs := ValidateArgs([]string{arg}, field.NewPath("args")); len(errs) > 0 {
			if !strings.HasPrefix(errs[0].Field, "args[0]") {
				t.Fatalf("error does not name the element: %v", errs)
			}
			return
		}
		if strings.ContainsAny(arg, shellMeta) || hasControl(arg) {
			t.Fatalf("accepted %q with a shell metacharacter or control character", arg)
		}
		for _, w := range strings.Fields(arg) {
			if strings.HasPrefix(w, "/") || hasDotDot(w) || forbiddenFlags[strings.ToLower(w)] != "" ||
				strings.HasPrefix(w, "+") && forbiddenCommand(w[1:]) != "" {
				t.Fatalf("accepted unsafe argument %q (word %q)", arg, w)
			}
		}
	})
}
