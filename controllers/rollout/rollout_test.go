package rollout_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/controllers/rollout"
)

// running is a started controller and the informer it decides from.
type running struct {
	c         *rollout.Controller
	instances *controllers.Informer
}

func start(e *controllertest.Env) *running {
	log := testr.New(e.T)
	ins := controllers.NewInformer(e.Store, resources.Instances, log)
	bps := controllers.NewInformer(e.Store, resources.Blueprints, log)
	rec := controllers.NewRecorder(e.Store, "l4m-rollout", log)
	c := rollout.New(rollout.Options{Store: e.Store, Instances: ins, Blueprints: bps, Recorder: rec, Log: log})
	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){ins.Run, bps.Run, rec.Run, c.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	e.T.Cleanup(func() { cancel(); wg.Wait() })
	return &running{c: c, instances: ins}
}

// report writes an Instance's status as its node would: running template
// "old" with "new" pending, Ready, with players.
func report(e *controllertest.Env, name string, mutate func(st *v1.InstanceStatus)) {
	e.T.Helper()
	for {
		in := e.Get(name)
		mutate(&in.Status)
		_, err := e.Store.Update(e.Ctx, resources.Instances, in, storage.UpdateOptions{Status: true})
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "modified") {
			e.T.Fatal(err)
		}
	}
}

func pending(players int32) func(*v1.InstanceStatus) {
	return func(st *v1.InstanceStatus) {
		st.TemplateHash, st.PendingTemplateHash, st.Players = "old", "new", players
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered"})
	}
}

// restarted is what the node reports once it ran the approved template.
func restarted(ready bool) func(*v1.InstanceStatus) {
	return func(st *v1.InstanceStatus) {
		st.TemplateHash, st.PendingTemplateHash = "new", ""
		s := metav1.ConditionFalse
		if ready {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: s, Reason: "Test"})
	}
}

func approved(e *controllertest.Env) []string {
	var out []string
	for _, in := range e.Instances() {
		if in.Annotations[v1.AnnotationApprovedTemplate] == "new" {
			out = append(out, in.Name)
		}
	}
	sort.Strings(out)
	return out
}

// settle waits until the approved set is want, then checks that it stays
// so: once the controller's informer holds every Instance as stored, one
// more decision of its own (run here, synchronously) approves nothing more.
// The controller must not approve past its budget.
func settle(e *controllertest.Env, r *running, want ...string) {
	e.T.Helper()
	e.Eventually(fmt.Sprintf("approved = %v", want), func() (bool, string) {
		got := approved(e)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	blueprints := map[string]bool{}
	e.Eventually("the controller's informer holds what is stored", func() (bool, string) {
		for _, in := range e.Instances() {
			blueprints[in.Namespace+"/"+in.Spec.BlueprintRef.Name] = true
			cached := r.instances.Get(in.Namespace + "/" + in.Name)
			if cached == nil || cached.GetResourceVersion() != in.ResourceVersion {
				return false, in.Name + " not seen at " + in.ResourceVersion
			}
		}
		return true, ""
	})
	for key := range blueprints {
		if err := r.c.Reconcile(e.Ctx, key); err != nil {
			e.T.Fatal(err)
		}
	}
	if got := approved(e); fmt.Sprint(got) != fmt.Sprint(want) {
		e.T.Fatalf("approved moved on to %v, want it to stay %v", got, want)
	}
}

func TestWhenEmptyOneAtATime(t *testing.T) {
	e := controllertest.NewEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		e.Instance(n, func(in *v1.Instance) { in.Spec.NodeName = "node-1"; in.Spec.Port = 27015 + int32(n[0]-'a') })
	}
	report(e, "a", pending(0))
	report(e, "b", pending(3)) // occupied
	report(e, "c", pending(0))
	r := start(e)
	settle(e, r, "a") // maxUnavailable 1 (the default): one restart at a time
	report(e, "a", restarted(false))
	settle(e, r, "a") // restarted but not Ready yet: still its turn
	report(e, "a", restarted(true))
	settle(e, r, "a", "c") // b has players: skipped, not waited for
	report(e, "c", restarted(true))
	settle(e, r, "a", "c")
	report(e, "b", func(st *v1.InstanceStatus) { st.Players = 0 })
	settle(e, r, "a", "b", "c")
}

func TestImmediateAndMaxUnavailable(t *testing.T) {
	e := controllertest.NewEnv(t)
	bp := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "now", Namespace: "default"},
		Spec: v1.BlueprintSpec{Rollout: v1.RolloutSpec{Policy: v1.RolloutImmediate, MaxUnavailable: 2}}}
	e.Create(resources.Blueprints, bp)
	for _, n := range []string{"a", "b", "c"} {
		e.Instance(n, func(in *v1.Instance) {
			in.Spec.BlueprintRef.Name = "now"
			in.Spec.NodeName = "node-1"
			in.Spec.Port = 27015 + int32(n[0]-'a')
		})
		report(e, n, pending(5))
	}
	r := start(e)
	settle(e, r, "a", "b") // players do not matter; two at a time
	report(e, "a", restarted(true))
	settle(e, r, "a", "b", "c")
}
