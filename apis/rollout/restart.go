package rollout

import (
	"encoding/json"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// RestartPatch is the JSON merge patch (application/merge-patch+json) that
// l4mctl rollout restart sends to a Blueprint or an Instance: restartedAt
// the time, forceRestartAt the same time with force, else removed (an
// earlier force forces nothing new anyway). Any client restarts the same
// way, a dashboard's Restart button among them.
func RestartPatch(now time.Time, force bool) []byte {
	at := now.UTC().Format(time.RFC3339Nano)
	var forceAt any // null removes the annotation
	if force {
		forceAt = at
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		v1.AnnotationRestartedAt: at, v1.AnnotationForceRestartAt: forceAt}}})
	return patch
}
