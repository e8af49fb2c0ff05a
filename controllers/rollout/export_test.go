package rollout

import "context"

// Reconcile runs one decision for a Blueprint key, synchronously: tests
// use it to see what the controller decides from what its informers hold.
func (c *Controller) Reconcile(ctx context.Context, key string) error { return c.reconcile(ctx, key) }
