package fetcher

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckRedirect(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	chain := func(ss ...string) []*url.URL {
		var out []*url.URL
		for _, s := range ss {
			out = append(out, u(s))
		}
		return out
	}
	cases := []struct {
		name string
		next string
		via  []*url.URL
		says string // "" = followed
	}{
		{"first redirect", "https://cdn.example/a", chain("https://example.org/a"), ""},
		{"http to https", "https://example.org/a", chain("http://example.org/a"), ""},
		{"http to http", "http://mirror.example/a", chain("http://example.org/a"), ""},
		{"the fifth", "http://h/5", chain("http://h/0", "http://h/1", "http://h/2", "http://h/3", "http://h/4"), ""},
		{"the sixth", "http://h/6", chain("http://h/0", "http://h/1", "http://h/2", "http://h/3", "http://h/4", "http://h/5"), "more than 5 redirects: http://h/0 → "},
		{"to itself", "http://h/a", chain("http://h/a"), "a redirect loop: http://h/a → http://h/a"},
		{"a longer loop", "http://h/b", chain("http://h/a", "http://h/b", "http://h/c"), "a redirect loop: http://h/a → http://h/b → http://h/c → http://h/b"},
		{"to file", "file:///etc/shadow", chain("https://h/a"), "a redirect to file:///etc/shadow: only http and https"},
		{"to ftp", "ftp://h/a", chain("http://h/a"), "only http and https"},
		{"https to http", "http://h/a", chain("https://h/a"), "from https to http (https://h/a → http://h/a)"},
		{"https, http, then http", "http://h/c", chain("https://h/a", "https://h/b"), "downgrade"},
		{"credentials redacted", "ftp://u:secret@h/a", chain("http://h/a"), "ftp://u:xxxxx@h/a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkRedirect(u(c.next), c.via, 5)
			switch {
			case c.says == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
				t.Errorf("checkRedirect = %v, want it refused saying %q", err, c.says)
			}
		})
	}
}

func TestStatusAttempt(t *testing.T) {
	cases := []struct {
		code   int
		reason string
		retry  bool
	}{
		{404, DownloadFailed, false},
		{410, DownloadFailed, false},
		{403, DownloadFailed, false},
		{401, DownloadFailed, false},
		{206, DownloadFailed, false},
		{408, ServerUnavailable, true},
		{429, RateLimited, true},
		{500, ServerUnavailable, true},
		{503, ServerUnavailable, true},
	}
	for _, c := range cases {
		a := statusAttempt(c.code, "x", "7")
		if a.err.Reason != c.reason || a.retry != c.retry {
			t.Errorf("%d: %s retry %v, want %s retry %v", c.code, a.err.Reason, a.retry, c.reason, c.retry)
		}
		if a.retry && a.retryAfter != "7" {
			t.Errorf("%d: Retry-After dropped", c.code)
		}
	}
}

func TestFileRoot(t *testing.T) {
	roots := []string{"/srv/mirror", "/var/lib/left4me/archives"}
	cases := []struct {
		path, root, rel string
		says            string
	}{
		{"/srv/mirror/sm.tar.gz", "/srv/mirror", "sm.tar.gz", ""},
		{"/srv/mirror/sm/1.12/sm.tar.gz", "/srv/mirror", "sm/1.12/sm.tar.gz", ""},
		{"/var/lib/left4me/archives/a.zip", "/var/lib/left4me/archives", "a.zip", ""},
		{"/srv/mirror", "", "", "not below"},
		{"/srv/mirror2/a", "", "", "not below"},
		{"/etc/shadow", "", "", "not below this node's overlay file roots (/srv/mirror, /var/lib/left4me/archives)"},
	}
	for _, c := range cases {
		root, rel, err := fileRoot(c.path, roots)
		switch {
		case c.says == "" && (err != nil || root != c.root || rel != c.rel):
			t.Errorf("fileRoot(%s) = %s, %s, %v", c.path, root, rel, err)
		case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
			t.Errorf("fileRoot(%s) = %v, want it refused saying %q", c.path, err, c.says)
		}
	}
	if _, _, err := fileRoot("/srv/mirror/a", nil); err == nil || !strings.Contains(err.Error(), "--overlay-file-roots") {
		t.Errorf("no roots: %v", err)
	}
}

func TestLimitsDefaults(t *testing.T) {
	l, err := Limits{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if l.MaxBytes != 2<<30 || l.Timeout != 30*time.Minute || l.StallWindow != 30*time.Second || l.MinBytesPerWindow != 64<<10 ||
		l.MaxRedirects != 5 || l.MaxAttempts != 4 || l.MaxRetryAfter != time.Minute || len(l.FileRoots) != 0 {
		t.Errorf("defaults %+v", l)
	}
	for _, bad := range []Limits{{Timeout: -1}, {MaxRedirects: -1}, {FileRoots: []string{"srv"}}, {FileRoots: []string{"/srv/"}}, {FileRoots: []string{"/srv/../etc"}}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
