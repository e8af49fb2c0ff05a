// Package manifest reads left4me objects from YAML or JSON files, the way
// `l4mctl apply -f` takes them: files, directories (optionally recursive) or
// standard input, several documents per file separated by "---". Every error
// names the file and line it is about: the field's own line for an unknown,
// duplicate or mistyped field, else the document's first line.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// Document is one object from a manifest.
type Document struct {
	// Source is "file:line" of the document's first line.
	Source   string
	Resource *resources.Resource
	// Object is the strictly decoded object.
	Object v1.Object
	// JSON is the document as the user wrote it, converted to JSON.
	JSON []byte
}

// ID names the object kubectl-style: instance.left4me.io/srv1.
func (d *Document) ID() string {
	return d.Resource.Singular + "." + v1.Group + "/" + d.Object.GetName()
}

// Read reads every document from paths ("-" is standard input). Directories
// contribute their .yaml, .yml and .json files, recursively when recursive is
// set. It returns all documents, or all the errors found: nothing is applied
// from a set of files that do not all parse.
func Read(paths []string, recursive bool, stdin io.Reader) ([]*Document, error) {
	var docs []*Document
	var errs []string
	for _, p := range paths {
		files, err := expand(p, recursive)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, f := range files {
			var data []byte
			if f == "-" {
				data, err = io.ReadAll(stdin)
				f = "<stdin>"
			} else {
				data, err = os.ReadFile(f)
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", f, err))
				continue
			}
			d, e := Parse(f, data)
			docs = append(docs, d...)
			errs = append(errs, e...)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects found in %s", strings.Join(paths, ", "))
	}
	return docs, nil
}

func expand(p string, recursive bool) ([]string, error) {
	if p == "-" {
		return []string{"-"}, nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	sort.Strings(files)
	return files, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// Parse splits one file's content into documents. It returns the documents
// that parsed and one error line per document that did not.
func Parse(file string, data []byte) ([]*Document, []string) {
	var docs []*Document
	var errs []string
	for _, chunk := range split(data) {
		src := fmt.Sprintf("%s:%d", file, chunk.line)
		if isBlank(chunk.text) {
			continue
		}
		js, err := yaml.YAMLToJSONStrict(chunk.text)
		if err != nil {
			// Make the YAML library's line numbers absolute in the file.
			msg := yamlLineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
				n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
				return fmt.Sprintf("line %d", n+chunk.line-1)
			})
			errs = append(errs, fmt.Sprintf("%s: malformed YAML: %s", file, strings.TrimPrefix(msg, "error converting YAML to JSON: ")))
			continue
		}
		d, err := decode(src, js, fieldLines(file, chunk))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		docs = append(docs, d)
	}
	return docs, errs
}

// decode checks and strictly decodes one document. at names the file:line
// of a field path, so an error about one field points at its own line.
func decode(src string, js []byte, at func(path string) string) (*Document, error) {
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, fmt.Errorf("%s: empty document", src)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, fmt.Errorf("%s: a document must be an object with apiVersion and kind: %v", src, err)
	}
	switch {
	case tm.APIVersion == "" || tm.Kind == "":
		return nil, fmt.Errorf("%s: apiVersion and kind are required", src)
	case tm.APIVersion != v1.APIVersion:
		return nil, fmt.Errorf("%s: unknown apiVersion %q (this server speaks %s)", src, tm.APIVersion, v1.APIVersion)
	}
	res, ok := resources.ByKind(tm.Kind)
	if !ok {
		kinds := make([]string, 0, len(resources.All))
		for _, r := range resources.All {
			kinds = append(kinds, r.Kind)
		}
		return nil, fmt.Errorf("%s: unknown kind %q in %s (known: %s)", src, tm.Kind, v1.APIVersion, strings.Join(kinds, ", "))
	}
	obj := res.New()
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("%s: %s %s: field %s: cannot be a %s (want %s)", at(te.Field), res.Kind, nameOf(js), te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("%s: %s %s: %v", src, res.Kind, nameOf(js), err)
	}
	if len(strict) > 0 {
		// One line per field, each at the field's own line.
		msgs := make([]string, len(strict))
		for i, e := range strict {
			where := src
			var fe sigsjson.FieldError
			if errors.As(e, &fe) {
				where = at(fe.FieldPath())
			}
			msgs[i] = fmt.Sprintf("%s: %s %s: %v", where, res.Kind, nameOf(js), e)
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s: %s: metadata.name is required", src, res.Kind)
	}
	if !res.Namespaced && obj.GetNamespace() != "" {
		return nil, fmt.Errorf("%s: %s %s is cluster-scoped: remove metadata.namespace", src, res.Kind, obj.GetName())
	}
	return &Document{Source: src, Resource: res, Object: obj, JSON: js}, nil
}

func nameOf(js []byte) string {
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	json.Unmarshal(js, &m)
	if m.Metadata.Name == "" {
		return "(unnamed)"
	}
	return strconv.Quote(m.Metadata.Name)
}

// fieldLines returns a function from a decoder's field path
// ("spec.cvars[1].nmae") to the file:line of that field's key in the
// document, falling back to the document's first line when the path cannot
// be followed. The JSON the decoder saw has no lines; the YAML node tree has.
func fieldLines(file string, c chunk) func(path string) string {
	docStart := fmt.Sprintf("%s:%d", file, c.line)
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(c.text, &doc); err != nil {
		return func(string) string { return docStart }
	}
	return func(path string) string {
		if line := lineOf(&doc, path); line > 0 {
			return fmt.Sprintf("%s:%d", file, line+c.line-1)
		}
		return docStart
	}
}

var pathStepRE = regexp.MustCompile(`[^.\[\]]+|\[\d+\]`)

// lineOf follows path through the node tree and returns the line of the
// last key (or list item) on it, 0 when the path leads nowhere.
func lineOf(n *yamlv3.Node, path string) int {
	line := 0
	for _, step := range pathStepRE.FindAllString(path, -1) {
		for n.Kind == yamlv3.DocumentNode || n.Kind == yamlv3.AliasNode {
			if n.Kind == yamlv3.AliasNode {
				n = n.Alias
			} else if len(n.Content) == 1 {
				n = n.Content[0]
			} else {
				return 0
			}
		}
		var next *yamlv3.Node
		switch {
		case strings.HasPrefix(step, "["):
			i, _ := strconv.Atoi(strings.Trim(step, "[]"))
			if n.Kind == yamlv3.SequenceNode && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		case n.Kind == yamlv3.MappingNode:
			for k := 0; k+1 < len(n.Content); k += 2 {
				if n.Content[k].Value == step {
					next = n.Content[k+1]
					line = n.Content[k].Line
					break
				}
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return line
}

type chunk struct {
	text []byte
	line int
}

// split cuts YAML at "---" lines, remembering where each document starts.
// A JSON file is one document.
func split(data []byte) []chunk {
	var out []chunk
	var cur bytes.Buffer
	start, n := 1, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimPrefix(line, "---")) == "" {
			out = append(out, chunk{text: append([]byte(nil), cur.Bytes()...), line: start})
			cur.Reset()
			start = n + 1
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	out = append(out, chunk{text: cur.Bytes(), line: start})
	return out
}

func isBlank(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
