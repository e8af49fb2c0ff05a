package agent

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/left4me/left4me/node/a2s"
)

// missesBeforeNotReady tolerates the real server's hiccups.
const missesBeforeNotReady = 3

// probe is the latest A2S_INFO result for one game.
type probe struct {
	addr string

	mu     sync.Mutex
	info   *a2s.Info
	misses int
	err    error
	seen   bool
	next   time.Time
	// inflight: a query is on its way (the loop does not send another).
	inflight bool
	// latency is the answered queries' times, for the metrics.
	latency latency
}

// startupProbe is how often a game that has not answered yet is asked:
// readiness should follow a start within a fraction of a second.
const startupProbe = 20 * time.Millisecond

func (p *probe) result() (bool, *a2s.Info, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info != nil && p.misses < missesBeforeNotReady {
		return true, p.info, ""
	}
	if !p.seen {
		return false, nil, "no A2S query answered yet on " + p.addr
	}
	return false, nil, fmt.Sprintf("%d A2S queries to %s unanswered: %v", p.misses, p.addr, p.err)
}

// probeFor returns the game's probe, creating it on first use.
func (a *Agent) probeFor(id string, port int32) *probe {
	a.mu.Lock()
	defer a.mu.Unlock()
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	p := a.probes[id]
	if p == nil || p.addr != addr {
		p = &probe{addr: addr}
		a.probes[id] = p
	}
	return p
}

func (a *Agent) forgetProbe(id string) {
	a.mu.Lock()
	delete(a.probes, id)
	a.mu.Unlock()
}

// probeLoop queries every running game and requeues its Instance when the
// answer changes what status says (ready, players, map). Queries run
// concurrently: a game that is slow to answer (starting, or hung) must not
// hold up the readiness of the others. It returns when ctx ends, once the
// queries in flight have (each is bounded by ctx and a timeout).
func (a *Agent) probeLoop(ctx context.Context) {
	t := time.NewTicker(startupProbe)
	defer t.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, maxConcurrentProbes)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		probes := make(map[string]*probe, len(a.probes))
		for id, p := range a.probes {
			probes[id] = p
		}
		a.mu.Unlock()
		now := time.Now()
		for id, p := range probes {
			p.mu.Lock()
			due := !now.Before(p.next) && !p.inflight
			p.inflight = p.inflight || due
			p.mu.Unlock()
			if !due {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-sem }()
				a.probeOnce(ctx, id, p)
			}()
		}
	}
}

// a2sTimeout bounds one A2S query: a game on loopback answers in well
// under a millisecond, so a second without an answer is a game not
// answering.
const a2sTimeout = time.Second

// maxConcurrentProbes bounds the A2S queries in flight from one node.
const maxConcurrentProbes = 32

func (a *Agent) probeOnce(ctx context.Context, id string, p *probe) {
	qctx, cancel := context.WithTimeout(ctx, a2sTimeout)
	began := time.Now()
	info, err := a2s.QueryInfo(qctx, p.addr)
	took := time.Since(began)
	cancel()
	before, beforeInfo, _ := p.result()
	p.mu.Lock()
	p.inflight = false
	p.seen = true
	if err != nil {
		p.misses++
		p.err = err
	} else {
		p.misses, p.info, p.err = 0, info, nil
		p.latency.observe(took.Seconds())
	}
	p.next = time.Now().Add(a.o.Probe)
	if p.info == nil {
		p.next = time.Now().Add(startupProbe)
	}
	p.mu.Unlock()
	after, afterInfo, _ := p.result()
	if before != after || (after && beforeInfo != nil && (beforeInfo.Players != afterInfo.Players ||
		beforeInfo.MaxPlayers != afterInfo.MaxPlayers || beforeInfo.Map != afterInfo.Map)) {
		a.enqueueID(id)
	}
}

func (a *Agent) enqueueID(id string) {
	for i := 0; i < len(id); i++ {
		if id[i] == '.' {
			a.queue.Add(id[:i] + "/" + id[i+1:])
			return
		}
	}
}
