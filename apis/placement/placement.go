// Package placement holds the rules for whether a Node may take an
// Instance that depend on the two objects alone (readiness, cordon,
// deletion, nodeSelector). The scheduler applies them before it looks at
// room and ports; l4mctl drain asks them whether any other node could take
// an Instance before it moves one off. One copy, so the two never disagree.
package placement

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Why a node may not take an Instance, as the scheduler's messages say it
// ("0/3 nodes available: 1 not ready, 2 cordoned").
const (
	NotReady         = "not ready"
	Cordoned         = "cordoned"
	BeingDeleted     = "being deleted"
	SelectorMismatch = "do not match nodeSelector"
)

// Ready is a Node whose Ready condition is True.
func Ready(n *v1.Node) bool {
	return meta.IsStatusConditionTrue(n.Status.Conditions, v1.ConditionReady)
}

// Refusal says why n may not take in ("" if it may, as far as these rules
// go). A cordon does not keep off an Instance that names its node.
func Refusal(n *v1.Node, in *v1.Instance) string {
	switch {
	case !Ready(n):
		return NotReady
	case n.Spec.Unschedulable && in.Spec.NodeName == "":
		return Cordoned
	case n.DeletionTimestamp != nil:
		return BeingDeleted
	case !labels.SelectorFromSet(in.Spec.NodeSelector).Matches(labels.Set(n.Labels)):
		return SelectorMismatch
	}
	return ""
}

// Tally counts why nodes refused, in the order the reasons first came up,
// and says it the way the scheduler's messages do: "1 not ready, 2 cordoned".
type Tally struct {
	order  []string
	counts map[string]int
}

// Add counts one node refused for why.
func (t *Tally) Add(why string) {
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	if t.counts[why] == 0 {
		t.order = append(t.order, why)
	}
	t.counts[why]++
}

// Reasons are the distinct reasons, first seen first.
func (t *Tally) Reasons() []string { return t.order }

// String is "N reason, M reason".
func (t *Tally) String() string {
	parts := make([]string, len(t.order))
	for i, why := range t.order {
		parts[i] = strconv.Itoa(t.counts[why]) + " " + why
	}
	return strings.Join(parts, ", ")
}

// InstallationBlocked says why no node may take an Instance whose Blueprint
// runs on inst, before any node is looked at ("" if nodes may): the
// Installation is being deleted, or no build is wanted yet.
func InstallationBlocked(inst *v1.Installation) string {
	switch {
	case inst.DeletionTimestamp != nil:
		return "Installation " + inst.Name + " is being deleted"
	case inst.Status.WantedBuild == "":
		return "Installation " + inst.Name + " has no build yet: no node has seen branch " + inst.Spec.Branch + "'s build"
	}
	return ""
}

// InstallationRefusal says why n may not take an Instance that runs on
// inst: n does not have inst's wanted build ready ("" if it has). why is
// the reason as a Tally counts it ("2 downloading build 123"); detail,
// when set, is what the node said about a failure ("node-c:
// DownloadFailed: no space left"), for the message after the tally.
func InstallationRefusal(n *v1.Node, inst *v1.Installation) (why, detail string) {
	wanted := inst.Status.WantedBuild
	entry := n.Status.NodeInstallationFor(inst.Name)
	switch {
	case entry != nil && entry.HasBuild(wanted):
		return "", ""
	case !labels.SelectorFromSet(inst.Spec.NodeSelector).Matches(labels.Set(n.Labels)):
		return "not selected by Installation " + inst.Name, ""
	case entry == nil:
		return "lack build " + wanted, ""
	case entry.Downloading == wanted || entry.Phase == v1.InstallDownloading:
		return "downloading build " + wanted, ""
	case entry.Phase == v1.InstallFailed:
		return "failed to install build " + wanted, n.Name + ": " + NodeInstallationProblem(entry)
	}
	return "lack build " + wanted, ""
}

// NodeInstallationProblem is what a node says about an Installation it does
// not have ready: "Reason: Message", or the phase when it gave no reason.
func NodeInstallationProblem(e *v1.NodeInstallation) string {
	switch {
	case e.Reason != "" && e.Message != "":
		return e.Reason + ": " + e.Message
	case e.Reason != "":
		return e.Reason
	case e.Message != "":
		return e.Phase + ": " + e.Message
	}
	return e.Phase
}
