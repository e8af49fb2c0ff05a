package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/chromedp/chromedp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/hack/internal/benchkit"
)

// waitJS defines l4mWait(key, want): a promise of the time (Unix ms, the
// browser's clock) at which the fleet table's row key first shows Ready
// want, observed by a MutationObserver as the page's script changes it.
const waitJS = `window.l4mWait = (key, want) => new Promise(resolve => {
	const table = document.getElementById("instances");
	const shows = () => { const td = table.querySelector('tr[data-key="' + key + '"] td:last-child'); return td !== null && td.textContent === want; };
	const now = () => performance.timeOrigin + performance.now();
	if (shows()) { resolve(now()); return; }
	const mo = new MutationObserver(() => { if (shows()) { const t = now(); mo.disconnect(); resolve(t); } });
	mo.observe(table, {childList: true, subtree: true, characterData: true});
});`

// readyTable times Ready → shown in the browser against Ready → delivered
// by an API watch, for the same writes.
func readyTable(ctx context.Context, tw *tabwriter.Writer, srv *server.Server, admin *client.Client, chromium string, n, rounds int) error {
	bctx, stop, err := newChromium(ctx, srv, chromium)
	if err != nil {
		return err
	}
	defer stop()
	base := srv.URL()
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/ui/login"), chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("#live.on"))); err != nil {
		return fmt.Errorf("log in and open the fleet page in Chromium: %w", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](waitJS+"; true")); err != nil {
		return err
	}
	list, err := admin.List(ctx, resources.Instances, "", client.ListOptions{})
	if err != nil {
		return err
	}
	w, err := admin.Watch(ctx, resources.Instances, "", client.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		return err
	}
	defer w.Stop()
	seen := stampEvents(w)
	var browser, watched, offsets []time.Duration
	var slack time.Duration
	for r := 0; r < rounds; r++ {
		ns, name := instanceName(r * n / rounds) // spread over the table
		key := ns + "/" + name
		obj, err := admin.Get(ctx, resources.Instances, ns, name)
		if err != nil {
			return err
		}
		node, port := obj.(*v1.Instance).Status.NodeName, obj.(*v1.Instance).Status.Port
		// Quiet first: unready, seen by both.
		if _, err := admin.PatchStatus(ctx, resources.Instances, ns, name, instanceStatus(node, port, "False")); err != nil {
			return err
		}
		if _, err := awaitWatch(seen, key, false); err != nil {
			return err
		}
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[float64](fmt.Sprintf("l4mWait(%q, %q)", key, "False"), chromedp.EvalAwaitPromise)); err != nil {
			return fmt.Errorf("%s unready in the browser: %w", key, err)
		}
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf("window.l4mShown = l4mWait(%q, %q); true", key, "True"))); err != nil {
			return err
		}
		offset, rtt, err := clockOffset(bctx)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := admin.PatchStatus(ctx, resources.Instances, ns, name, instanceStatus(node, port, "True")); err != nil {
			return err
		}
		at, err := awaitWatch(seen, key, true)
		if err != nil {
			return err
		}
		shown, err := chromedp.Run(bctx, chromedp.Evaluate[float64]("window.l4mShown", chromedp.EvalAwaitPromise))
		if err != nil {
			return fmt.Errorf("%s Ready in the browser: %w", key, err)
		}
		watched, offsets, slack = append(watched, at.Sub(start)), append(offsets, offset), max(slack, rtt/2)
		browser = append(browser, fromMillis(shown).Add(-offset).Sub(start))
	}
	limit := benchkit.Percentile(watched, 0.5)
	fmt.Fprintf(tw, "Ready=True written → seen (%d transitions, %d rows)\tmedian\tp90\tmax\tmedian / API watch\t\n", rounds, n)
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"fleet page in Chromium (row shows True)", browser}, {"API watch (event delivered)", watched}} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t\n", r.name, benchkit.Round(benchkit.Percentile(r.d, 0.5)), benchkit.Round(benchkit.Percentile(r.d, 0.9)), benchkit.Round(benchkit.Percentile(r.d, 1)), float64(benchkit.Percentile(r.d, 0.5))/float64(limit))
	}
	tw.Flush()
	fmt.Printf("(the browser's clock, read against this program's before each write: %s ahead (median), each reading within ±%s)\n", benchkit.Round(benchkit.Percentile(offsets, 0.5)), benchkit.Round(slack))
	return nil
}

// fromMillis is a browser time (Unix milliseconds) as a time.Time.
func fromMillis(ms float64) time.Time { return time.UnixMicro(int64(ms * 1000)) }

// event is one watch event's Instance, Ready or not, and when it came.
type event struct {
	key   string
	ready bool
	at    time.Time
}

// stampEvents reads w as its events come (in a goroutine of its own, so
// none waits for this program to look) and passes each on, stamped.
func stampEvents(w watch.Interface) <-chan event {
	out := make(chan event, 1024)
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			at := time.Now()
			if in, ok := ev.Object.(*v1.Instance); ok {
				out <- event{in.Namespace + "/" + in.Name, meta.IsStatusConditionTrue(in.Status.Conditions, v1.ConditionReady), at}
			}
		}
	}()
	return out
}

// awaitWatch waits for the event saying Instance key's Ready is want and
// returns when it arrived.
func awaitWatch(events <-chan event, key string, want bool) (time.Time, error) {
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return time.Time{}, fmt.Errorf("the watch ended waiting for %s", key)
			}
			if ev.key == key && ev.ready == want {
				return ev.at, nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("no watch event for %s Ready=%v within 30s", key, want)
		}
	}
}

// clockOffset is how far the browser's clock (performance.timeOrigin +
// now) is ahead of this program's: of 5 readings, the one with the
// shortest round trip (returned too), against that round trip's midpoint.
func clockOffset(ctx context.Context) (offset, rtt time.Duration, err error) {
	rtt = -1
	for i := 0; i < 5; i++ {
		before := time.Now()
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64]("performance.timeOrigin + performance.now()"))
		if err != nil {
			return 0, 0, err
		}
		if d := time.Since(before); rtt < 0 || d < rtt {
			rtt, offset = d, fromMillis(ms).Sub(before.Add(d/2))
		}
	}
	return offset, rtt, nil
}

// newChromium starts headless Chromium, off the network, trusting the
// server's certificate by its public key (as apis/ui's browser test does).
func newChromium(ctx context.Context, srv *server.Server, path string) (context.Context, func(), error) {
	spki, err := serverSPKI(srv)
	if err != nil {
		return nil, nil, err
	}
	profile, err := os.MkdirTemp("", "l4m-bench-chromium-")
	if err != nil {
		return nil, nil, err
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("ignore-certificate-errors-spki-list", spki),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	return bctx, func() { cancelBrowser(); cancelAlloc(); os.RemoveAll(profile) }, nil
}

// serverSPKI is the base64 SHA-256 of the server certificate's public key.
func serverSPKI(srv *server.Server) (string, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	u, _ := url.Parse(srv.URL())
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}
