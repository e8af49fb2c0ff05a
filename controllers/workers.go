package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
)

// RunWorkers takes keys from queue with n workers until ctx ends. A key
// whose reconcile fails is retried with the queue's backoff; one that
// succeeds is forgotten (its backoff reset).
func RunWorkers(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], n int,
	reconcile func(context.Context, string) error, log logr.Logger) {
	go func() { <-ctx.Done(); queue.ShutDown() }()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, quit := queue.Get()
				if quit {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := reconcile(rctx, key)
				cancel()
				if err != nil && ctx.Err() == nil {
					log.Info("reconcile failed; retrying", "key", key, "error", err.Error())
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		}()
	}
	wg.Wait()
}
