// Package steam reads what steamcmd writes and prints: Valve's KeyValues
// (VDF) text, the app manifest steamapps/appmanifest_<id>.acf that records
// the installed build, and the app info that +app_info_print shows for the
// build Steam offers. The installer compares the two to know whether a
// server's files are current.
package steam

import (
	"fmt"
	"strings"
)

// Node is one KeyValues pair: a key with either a string value or, when
// Children is non-nil, a block of pairs. Order and duplicate keys are kept
// as written.
type Node struct {
	Key      string
	Value    string
	Children []*Node
}

// IsBlock reports whether n is a { } block rather than a string value.
func (n *Node) IsBlock() bool { return n.Children != nil }

// Lookup follows path from n, matching keys case-insensitively as Valve's
// own reader does, and returns the first match.
func (n *Node) Lookup(path ...string) (*Node, bool) {
	cur := n
	for _, k := range path {
		var next *Node
		for _, c := range cur.Children {
			if strings.EqualFold(c.Key, k) {
				next = c
				break
			}
		}
		if next == nil {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// String returns the value at path, or "" and false when it is missing or
// is a block.
func (n *Node) String(path ...string) (string, bool) {
	c, ok := n.Lookup(path...)
	if !ok || c.IsBlock() {
		return "", false
	}
	return c.Value, true
}

// ParseKeyValues parses text holding exactly one top-level pair (as an .acf
// or appinfo text does). Errors name the line.
func ParseKeyValues(text string) (*Node, error) {
	p := &parser{src: text, line: 1}
	n, err := p.pair()
	if err != nil {
		return nil, err
	}
	if tok, err := p.next(); err != nil {
		return nil, err
	} else if tok.kind != tokEOF {
		return nil, fmt.Errorf("line %d: unexpected %s after the top-level block %q", tok.line, tok, n.Key)
	}
	return n, nil
}

// parsePrefix parses one top-level pair at the start of text and ignores
// what follows (steamcmd prints more lines after the app info). Line
// numbers in errors count from firstLine.
func parsePrefix(text string, firstLine int) (*Node, error) {
	p := &parser{src: text, line: firstLine}
	return p.pair()
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokString
	tokOpen
	tokClose
)

type token struct {
	kind tokKind
	text string
	line int
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokOpen:
		return "'{'"
	case tokClose:
		return "'}'"
	}
	return fmt.Sprintf("string %q", t.text)
}

type parser struct {
	src  string
	pos  int
	line int
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

func (p *parser) pair() (*Node, error) { return p.pairAt(0) }

func (p *parser) pairAt(depth int) (*Node, error) {
	key, err := p.next()
	if err != nil {
		return nil, err
	}
	if key.kind != tokString {
		return nil, fmt.Errorf("line %d: expected a key, found %s", key.line, key)
	}
	return p.valueFor(key, depth)
}

func (p *parser) valueFor(key token, depth int) (*Node, error) {
	val, err := p.next()
	if err != nil {
		return nil, err
	}
	switch val.kind {
	case tokString:
		return &Node{Key: key.text, Value: val.text}, nil
	case tokOpen:
		if depth >= maxDepth {
			return nil, fmt.Errorf("line %d: blocks nested deeper than %d under key %q", val.line, maxDepth, key.text)
		}
		n := &Node{Key: key.text, Children: []*Node{}}
		for {
			t, err := p.next()
			if err != nil {
				return nil, err
			}
			switch t.kind {
			case tokClose:
				return n, nil
			case tokString:
				c, err := p.valueFor(t, depth+1)
				if err != nil {
					return nil, err
				}
				n.Children = append(n.Children, c)
			case tokEOF:
				return nil, fmt.Errorf("line %d: block %q (opened on line %d) is not closed", t.line, key.text, val.line)
			default:
				return nil, fmt.Errorf("line %d: expected a key or '}' in block %q, found %s", t.line, key.text, t)
			}
		}
	}
	return nil, fmt.Errorf("line %d: expected a value or '{' after key %q, found %s", val.line, key.text, val)
}

// next returns the next token, skipping blanks and // comments.
func (p *parser) next() (token, error) {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "//"):
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '{':
			p.pos++
			return token{kind: tokOpen, line: p.line}, nil
		case c == '}':
			p.pos++
			return token{kind: tokClose, line: p.line}, nil
		case c == '"':
			return p.quoted()
		default:
			start := p.pos
			for p.pos < len(p.src) && !strings.ContainsRune(" \t\r\n{}\"", rune(p.src[p.pos])) {
				p.pos++
			}
			return token{kind: tokString, text: p.src[start:p.pos], line: p.line}, nil
		}
	}
	return token{kind: tokEOF, line: p.line}, nil
}

// quoted reads a "..." string with Valve's escapes \" \\ \n \t.
func (p *parser) quoted() (token, error) {
	start := p.line
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case '"':
			p.pos++
			return token{kind: tokString, text: b.String(), line: start}, nil
		case '\\':
			if p.pos+1 < len(p.src) {
				switch p.src[p.pos+1] {
				case '"', '\\':
					b.WriteByte(p.src[p.pos+1])
					p.pos += 2
					continue
				case 'n':
					b.WriteByte('\n')
					p.pos += 2
					continue
				case 't':
					b.WriteByte('\t')
					p.pos += 2
					continue
				}
			}
		case '\n':
			p.line++
		}
		b.WriteByte(c)
		p.pos++
	}
	return token{}, fmt.Errorf("line %d: quoted string is not closed", start)
}

// Format writes n the way Steam writes .acf files: tab-indented, two tabs
// between a key and its value, braces on their own lines.
func Format(n *Node) string {
	var b strings.Builder
	format(&b, n, 0)
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)

func format(b *strings.Builder, n *Node, depth int) {
	ind := strings.Repeat("\t", depth)
	if !n.IsBlock() {
		fmt.Fprintf(b, "%s\"%s\"\t\t\"%s\"\n", ind, escaper.Replace(n.Key), escaper.Replace(n.Value))
		return
	}
	fmt.Fprintf(b, "%s\"%s\"\n%s{\n", ind, escaper.Replace(n.Key), ind)
	for _, c := range n.Children {
		format(b, c, depth+1)
	}
	fmt.Fprintf(b, "%s}\n", ind)
}
