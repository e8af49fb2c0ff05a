package extract

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
)

// tar extracts a tar stream. decompressed is the decompressor r reads
// from, if any: after the last entry it is read to its end, so a damaged
// checksum or trailer is found and the bytes after the tar count too.
func (x *extractor) tar(r io.Reader, decompressed io.Reader) error {
	spy := &eofSpy{r: r}
	tr := tar.NewReader(spy)
	var prev *string // the last entry's name, once there is one
	for {
		if err := x.ctx.Err(); err != nil {
			return afterErr(prev, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) { // names are checked here, not by archive/tar
			return afterErr(prev, corrupt(err))
		}
		prev = &hdr.Name
		if err := x.handle(tarEntry(hdr, tr)); err != nil {
			return err
		}
	}
	if decompressed == nil {
		if spy.eof {
			return afterErr(prev, corrupt(errEndMarker))
		}
		return nil
	}
	if _, err := x.copy(io.Discard, decompressed, true); err != nil {
		return afterErr(prev, err)
	}
	return nil
}

// tarEntry describes a tar header as an entry. archive/tar has already
// folded GNU long names, PAX records and sparse maps into it.
func tarEntry(hdr *tar.Header, tr *tar.Reader) *entry {
	e := &entry{name: hdr.Name, mode: hdr.FileInfo().Mode()}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // archive/tar turns the old '\x00' into TypeReg
		e.kind, e.data, e.size = kindFile, tr, hdr.Size
	case tar.TypeDir:
		e.kind = kindDir
	case tar.TypeSymlink:
		e.kind, e.link = kindSymlink, hdr.Linkname
	case tar.TypeLink:
		e.kind, e.link = kindHardlink, hdr.Linkname
	case tar.TypeXGlobalHeader:
		e.kind, e.data = kindMeta, tr
	case tar.TypeChar:
		e.kind, e.what = kindRefused, "character device"
	case tar.TypeBlock:
		e.kind, e.what = kindRefused, "block device"
	case tar.TypeFifo:
		e.kind, e.what = kindRefused, "fifo"
	default:
		e.kind, e.what = kindUnknown, fmt.Sprintf("tar entry type %q, which this extractor does not know", hdr.Typeflag)
	}
	return e
}

// eofSpy notes whether the tar reader hit the end of its input: after a
// proper end-of-archive marker it never does.
type eofSpy struct {
	r   io.Reader
	eof bool
}

func (s *eofSpy) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}
