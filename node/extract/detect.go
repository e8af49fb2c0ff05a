package extract

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz/lzma"
)

// headLen is how much of an archive Detect wants to see (a tar header).
const headLen = 512

var (
	gzipMagic = []byte{0x1f, 0x8b}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zipMagics = [][]byte{[]byte("PK\x03\x04"), []byte("PK\x05\x06")} // a first entry; an empty archive
)

// others are formats people may hand us, named so the error says what the
// file is rather than only what it is not.
var others = []struct {
	magic []byte
	name  string
}{
	{[]byte("BZh"), "bzip2"},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
	{[]byte("7z\xbc\xaf\x27\x1c"), "7z"},
	{[]byte("Rar!\x1a\x07"), "rar"},
	{[]byte{0x34, 0x12, 0xaa, 0x55}, "a VPK file"}, // Workshop items are used as they are, not extracted
	{[]byte("<!DOCTYPE"), "an HTML page"},
	{[]byte("<!doctype"), "an HTML page"},
	{[]byte("<html"), "an HTML page"},
}

// Detect says which format an archive is from its first bytes (up to 512:
// a tar header).
func Detect(head []byte) (Format, error) {
	switch {
	case len(head) == 0:
		return Auto, fmt.Errorf("%w: an empty file", ErrFormat)
	case bytes.HasPrefix(head, gzipMagic):
		return TarGz, nil
	case bytes.HasPrefix(head, xzMagic):
		return TarXz, nil
	}
	for _, m := range zipMagics {
		if bytes.HasPrefix(head, m) {
			return Zip, nil
		}
	}
	if isTarHeader(head) {
		return Tar, nil
	}
	for _, o := range others {
		if bytes.HasPrefix(head, o.magic) {
			return Auto, fmt.Errorf("%w: %s, not a tar, tar.gz, tar.xz or zip archive", ErrFormat, o.name)
		}
	}
	return Auto, fmt.Errorf("%w: not a tar, tar.gz, tar.xz or zip archive (it starts with %q)", ErrFormat, head[:min(len(head), 8)])
}

// isTarHeader: the ustar magic (POSIX and GNU), or for an old v7 archive a
// header whose checksum adds up.
func isTarHeader(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if bytes.Equal(b[257:262], []byte("ustar")) {
		return true
	}
	field := strings.TrimRight(strings.TrimLeft(string(b[148:156]), " "), " \x00")
	want, err := strconv.ParseUint(field, 8, 32)
	if err != nil {
		return false
	}
	var sum uint64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += uint64(c)
	}
	return sum == want && b[0] != 0
}

// xzDictCap reads the dictionary size the first block of an xz stream
// asks for, from the stream's first bytes (the 12-byte stream header and
// the block header after it). ok is false when head does not hold a
// readable LZMA2 block header; the xz reader then reports what is wrong.
func xzDictCap(head []byte) (dict int64, ok bool) {
	const streamHeader = 12
	if len(head) <= streamHeader || !bytes.HasPrefix(head, xzMagic) {
		return 0, false
	}
	size := int(head[streamHeader])
	if size == 0 { // an index: a stream with no blocks
		return 0, false
	}
	hlen := (size + 1) * 4
	if len(head) < streamHeader+hlen {
		return 0, false
	}
	h := head[streamHeader : streamHeader+hlen-4] // without the CRC
	flags := h[1]
	r := bytes.NewReader(h[2:])
	if flags&0x40 != 0 { // compressed size
		if _, err := binary.ReadUvarint(r); err != nil {
			return 0, false
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, err := binary.ReadUvarint(r); err != nil {
			return 0, false
		}
	}
	for range int(flags&0x03) + 1 {
		id, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, false
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return 0, false
		}
		props := make([]byte, n)
		r.Read(props)
		if id == 0x21 && n == 1 { // LZMA2
			d, err := lzma.DecodeDictCap(props[0])
			if err != nil {
				return 0, false
			}
			return d, true
		}
	}
	return 0, false
}
