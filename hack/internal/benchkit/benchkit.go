// Package benchkit is what the hack/bench* programs share: the admin's
// client of a server they started, and the percentiles they print.
package benchkit

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/server"
)

// AdminClient is a client of srv with the admin config it wrote, and that
// config's token.
func AdminClient(srv *server.Server) (*client.Client, string, error) {
	f, err := client.LoadFile(srv.AdminConfigPath)
	if err != nil {
		return nil, "", err
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, "", err
	}
	cl, err := client.New(cfg)
	return cl, f.Token, err
}

// Percentile is the p-th (0..1) of d, nearest rank below; d is not
// reordered.
func Percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// Round keeps a duration readable in a table: to 10µs above a
// millisecond, to 1µs below.
func Round(d time.Duration) time.Duration {
	if d > time.Millisecond || d < -time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// StartServer starts an l4m-server serving the API alone (no controllers)
// with its embedded etcd in dir, on a free loopback port, no per-credential
// rate limit; it returns the server with the admin's client and token.
// Close the server when done.
func StartServer(ctx context.Context, dir string) (*server.Server, *client.Client, string, error) {
	srv, err := server.Start(ctx, server.Options{DataDir: dir, Listen: "127.0.0.1:0", Log: logr.Discard()})
	if err != nil {
		return nil, nil, "", err
	}
	cl, token, err := AdminClient(srv)
	if err != nil {
		srv.Close()
		return nil, nil, "", err
	}
	return srv, cl, token, nil
}

// Parallel runs total operations over c workers, each taking the next
// index, and returns operations per second; the first error stops every
// worker.
func Parallel(c, total int, op func(i int) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	var failed atomic.Bool
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				if err := op(i); err != nil {
					once.Do(func() { firstErr = err; failed.Store(true) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), firstErr
}

// CPUTime is this process's user and system CPU time so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
