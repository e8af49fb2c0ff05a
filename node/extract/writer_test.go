package extract

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// writerCalls turns a tar archive's entries into Writer calls, as a
// source that is not an archive makes them; ok is false when the archive
// holds an entry a Writer is not given (a hardlink, a device) or cannot
// be read whole.
func writerCalls(data []byte) (calls []func(*Writer) error, ok bool) {
	var r io.Reader = bytes.NewReader(data)
	if f, _ := Detect(data); f == TarGz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, false
		}
		r = zr
	} else if f != Tar {
		return nil, false
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return calls, true
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, false
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, false
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			calls = append(calls, func(w *Writer) error { return w.Dir(hdr.Name) })
		case tar.TypeReg:
			calls = append(calls, func(w *Writer) error {
				return w.File(hdr.Name, hdr.FileInfo().Mode(), hdr.Size, bytes.NewReader(body))
			})
		case tar.TypeSymlink:
			calls = append(calls, func(w *Writer) error { return w.Symlink(hdr.Name, strings.NewReader(hdr.Linkname)) })
		default:
			return nil, false
		}
	}
}

// TestWriterRefusesAsExtract: every refusal of Extract that entries can
// express is the Writer's too, with the same error and the same tree
// left: the rules live in one place.
func TestWriterRefusesAsExtract(t *testing.T) {
	ran := 0
	for i, c := range badCases("/sentinel") {
		if !strings.HasPrefix(c.name, "tar") || c.leftAny || errors.Is(c.kind, ErrCorrupt) {
			continue
		}
		if _, ok := writerCalls(c.data(t)); !ok {
			continue // hardlinks, devices: a Writer is not given them
		}
		ran++
		t.Run(c.name, func(t *testing.T) {
			wd := newWorld(t)
			c := badCases(wd.sibling)[i]
			w, err := NewWriter(context.Background(), wd.dst, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			calls, _ := writerCalls(c.data(t))
			for _, call := range calls {
				if err = call(w); err != nil {
					break
				}
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v\nwant one wrapping %v and saying %q", err, c.kind, c.msg)
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error %q: want an *EntryError", err)
			}
			wd.untouched(t)
			if err := Verify(wd.dst, VerifyOptions{}); err != nil {
				t.Fatalf("what is left does not pass Verify: %v", err)
			}
			if got, want := listing(t, wd.dst), slices.Sorted(slices.Values(c.left)); !slices.Equal(got, want) {
				t.Fatalf("left in dst:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	if ran < 15 {
		t.Errorf("only %d cases went through the Writer", ran)
	}
}

// unread fails a test that reads it: a file refused by its size must not
// be opened.
type unread struct{ t *testing.T }

func (u unread) Read([]byte) (int, error) {
	u.t.Error("the content of a refused file was read")
	return 0, io.EOF
}

func TestWriter(t *testing.T) {
	wd := newWorld(t)
	w, err := NewWriter(context.Background(), wd.dst, Options{SubPath: "repo", Into: "left4dead2", Limits: Limits{MaxEntries: 6, MaxEntryBytes: 1 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, err := range []error{
		w.Dir("repo"),
		w.File("repo/cfg/server.cfg", 0o664|fs.ModeSetuid, 12, strings.NewReader("hostname x\n")),
		w.File("repo/bin/start.sh", 0o700, 3, strings.NewReader("#!\n")),
		w.Symlink("repo/cfg/current.cfg", strings.NewReader("server.cfg")),
		w.Skip("repo/lib/submodule"),
		w.File("README.md", 0o644, 2, strings.NewReader("hi")), // outside subPath
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"left4dead2/",
		"left4dead2/bin/",
		"left4dead2/bin/start.sh -rwxr-xr-x",
		"left4dead2/cfg/",
		"left4dead2/cfg/current.cfg -> server.cfg",
		"left4dead2/cfg/server.cfg -rw-r--r--",
	}
	if got := listing(t, wd.dst); !slices.Equal(got, want) {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s := w.Stats()
	if s.Entries != 6 || s.Files != 2 || s.Symlinks != 1 || s.Skipped != 3 || s.ModesStripped != 1 || s.Bytes != 14 {
		t.Errorf("stats %+v", s)
	}
	// Refused by its size before a byte is read; the next is one entry
	// too many.
	err = w.File("repo/maps/big.vpk", 0o644, 2<<10, unread{t})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), `entry "repo/maps/big.vpk"`) {
		t.Errorf("a file over MaxEntryBytes: %v", err)
	}
	if err := w.Dir("repo/more"); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxEntries (6)") {
		t.Errorf("one entry too many: %v", err)
	}
	wd.untouched(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w2, err := NewWriter(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if err := w2.Dir("x"); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled context: %v", err)
	}
	if _, err := NewWriter(context.Background(), t.TempDir(), Options{Into: "../x"}); err == nil {
		t.Error("a bad Into was taken")
	}
}
