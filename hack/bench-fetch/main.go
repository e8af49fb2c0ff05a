// Command bench-fetch measures the overlay fetcher: the time to download
// and extract a generated tar.gz (500 MB by default) from an HTTP server on
// loopback with node/fetcher's FetchArchive (the sha256 checked while
// streaming, the download kept whole on disk, then extracted with
// node/extract's checks), side by side with `curl | tar -xz` of the same
// file (no checksum, no checks, one streaming pass) and with the shell
// doing what the fetcher does (`curl -o`, `sha256sum -c`, `tar -xzf`).
//
// It runs the fetcher in this process, not through the Runner's unit:
// what is measured is the download and extraction, not systemd's start of
// a unit (node/systemd's benchmarks cover that). It prints medians of
// -runs runs. Run it with `make bench-fetch`.
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/left4me/left4me/node/fetcher"
)

func main() {
	var o options
	flag.Int64Var(&o.sizeMB, "size", 500, "the archive's size, MB (10^6 bytes), compressed")
	flag.IntVar(&o.runs, "runs", 3, "runs per method (the median is printed)")
	flag.StringVar(&o.dir, "dir", filepath.Join(os.TempDir(), "l4m-bench-fetch"), "where the archive and the extracted trees go (the archive is kept for the next run)")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fetch:", err)
		os.Exit(1)
	}
}

type options struct {
	sizeMB int64
	runs   int
	dir    string
}

// method is one way of getting the archive's tree into dst.
type method struct {
	name string
	run  func(ctx context.Context, url, sum, dst string) error
}

func run(o options, out io.Writer) error {
	for _, tool := range []string{"curl", "tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed for the side-by-side runs: %w", tool, err)
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	archive := filepath.Join(o.dir, fmt.Sprintf("bench-%dMB.tar.gz", o.sizeMB))
	start := time.Now()
	info, err := ensureArchive(archive, o.sizeMB*1e6)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "archive: %s, %d files, %.0f MB compressed, %.0f MB extracted (ready in %s)\n",
		archive, info.files, float64(info.size)/1e6, float64(info.tree)/1e6, time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, archive) })}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/" + filepath.Base(archive)

	methods := []method{
		{"node/fetcher FetchArchive", fetch},
		{"curl | tar -xz", shell(`curl -sf "$URL" | tar -xz -C "$DST"`)},
		{"curl -o, sha256sum -c, tar -xzf", shell(`curl -sf -o "$DST.download" "$URL" && echo "$SUM  $DST.download" | sha256sum -c --quiet && tar -xzf "$DST.download" -C "$DST" && rm "$DST.download"`)},
	}
	ctx := context.Background()
	times := make([][]time.Duration, len(methods))
	// Interleaved, so a slower stretch of the machine hits every method.
	for r := 0; r < o.runs; r++ {
		for i, m := range methods {
			dst := filepath.Join(o.dir, "tree")
			os.RemoveAll(dst)
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			t0 := time.Now()
			if err := m.run(ctx, url, info.sum, dst); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			times[i] = append(times[i], time.Since(t0))
			if err := checkTree(dst, info); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			os.RemoveAll(dst)
		}
	}

	base := median(times[1])
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "method\tmedian\tmin\tmax\tMB/s (compressed)\tvs curl | tar\t\n")
	for i, m := range methods {
		med := median(times[i])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.2fx\t\n", m.name, med.Round(time.Millisecond),
			slices.Min(times[i]).Round(time.Millisecond), slices.Max(times[i]).Round(time.Millisecond),
			float64(info.size)/1e6/med.Seconds(), float64(med)/float64(base))
	}
	tw.Flush()
	fmt.Fprintf(out, "(median of %d runs each, interleaved; loopback HTTP; %d CPUs)\n", o.runs, runtime.NumCPU())
	return nil
}

// fetch is the fetcher's way: FetchArchive into a staging dir, whose tree
// becomes dst.
func fetch(ctx context.Context, url, sum, dst string) error {
	staging := dst + ".staging"
	os.RemoveAll(staging)
	if err := os.Mkdir(staging, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if _, err := fetcher.FetchArchive(ctx, fetcher.FetchSpec{URL: url, SHA256: sum}, staging); err != nil {
		return err
	}
	if err := os.Remove(dst); err != nil {
		return err
	}
	return os.Rename(filepath.Join(staging, fetcher.TreeName), dst)
}

func shell(script string) func(ctx context.Context, url, sum, dst string) error {
	return func(ctx context.Context, url, sum, dst string) error {
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), "URL="+url, "SUM="+sum, "DST="+dst)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
}

type archiveInfo struct {
	sum   string
	size  int64 // compressed
	tree  int64 // bytes of file content extracted
	files int
	last  string // the last file's name, checked after each run
}

// ensureArchive makes a tar.gz of about size bytes at path unless one is
// there (it is kept between runs of the benchmark), and describes it. The
// content is shaped like game content: a few hundred files of 256 KiB to
// 8 MiB, mostly incompressible (maps, textures, sounds) with compressible
// runs (text, configs), in a top directory.
func ensureArchive(path string, size int64) (archiveInfo, error) {
	if info, err := describe(path); err == nil && info.size >= size && info.size < size+size/10+(8<<20) {
		return info, nil
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return archiveInfo{}, err
	}
	defer os.Remove(path + ".tmp")
	counted := &countingWriter{w: f}
	bw := bufio.NewWriterSize(counted, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return archiveInfo{}, err
	}
	tw := tar.NewWriter(zw)
	rng := rand.New(rand.NewChaCha8([32]byte{'l', '4', 'm'}))
	text := []byte(strings.Repeat("sm_cvar sv_maxupdaterate 100 // left4me benchmark\n", 4096))
	buf := make([]byte, 8<<20)
	for i := 0; counted.n < size; i++ {
		n := 256<<10 + rng.IntN(8<<20-256<<10)
		body := buf[:n]
		fillGameLike(rng, body, text)
		name := fmt.Sprintf("bench/left4dead2/addons/pack%03d/file%05d.bin", i/100, i)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			return archiveInfo{}, err
		}
		if _, err := tw.Write(body); err != nil {
			return archiveInfo{}, err
		}
		zw.Flush() // so counted.n follows the compressed size
		bw.Flush()
	}
	if err := errors.Join(tw.Close(), zw.Close(), bw.Flush(), f.Close()); err != nil {
		return archiveInfo{}, err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return archiveInfo{}, err
	}
	return describe(path)
}

// fillGameLike fills b with 3/4 random bytes and 1/4 text, in 64 KiB runs.
func fillGameLike(rng *rand.Rand, b, text []byte) {
	const run = 64 << 10
	for off := 0; off < len(b); off += run {
		end := min(off+run, len(b))
		if (off/run)%4 == 3 {
			copy(b[off:end], text)
			continue
		}
		for i := off; i < end; i += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && i+k < end; k++ {
				b[i+k] = byte(v >> (8 * k))
			}
		}
	}
}

// describe reads the archive once: its sha256 and size, and its tree's
// file count, bytes and last file.
func describe(path string) (archiveInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return archiveInfo{}, err
	}
	defer f.Close()
	h := sha256.New()
	cr := &countingWriter{w: h}
	zr, err := gzip.NewReader(io.TeeReader(f, cr))
	if err != nil {
		return archiveInfo{}, err
	}
	info := archiveInfo{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return archiveInfo{}, err
		}
		info.files++
		info.tree += hdr.Size
		info.last = hdr.Name
	}
	io.Copy(cr, f) // gzip's trailer, and anything after
	st, err := f.Stat()
	if err != nil {
		return archiveInfo{}, err
	}
	info.size = st.Size()
	info.sum = hex.EncodeToString(h.Sum(nil))
	return info, nil
}

// checkTree makes sure a method really extracted the archive: its last
// file is there.
func checkTree(dst string, info archiveInfo) error {
	if _, err := os.Stat(filepath.Join(dst, info.last)); err != nil {
		return fmt.Errorf("the tree is incomplete: %w", err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
