package yamlx

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Parse checks data (Check) and parses it into a YAML tree. A syntax error
// is an *Error at the position go-yaml gives.
func Parse(file string, data []byte) (f *ast.File, err error) {
	if err := Check(file, data); err != nil {
		return nil, err
	}
	defer func() {
		// go-yaml v1.19.2 panics on some malformed input; a file must
		// give an error, never crash the daemon on reload.
		if r := recover(); r != nil {
			f, err = nil, Errorf(file, 1, 1, "not valid YAML: the parser failed (%s)", cleanMessage(fmt.Sprint(r)))
		}
	}()
	f, err = parser.ParseBytes(data, 0)
	if err != nil {
		return nil, syntaxError(file, err)
	}
	return f, nil
}

func syntaxError(file string, err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg := "not valid YAML: " + cleanMessage(ye.GetMessage())
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return Errorf(file, tk.Position.Line, tk.Position.Column, "%s", msg)
		}
		return Errorf(file, 1, 1, "%s", msg)
	}
	return Errorf(file, 1, 1, "not valid YAML: %s", cleanMessage(err.Error()))
}

// Body returns the one document of f: nil when the file holds only
// comments, and an error at the second document when there are several,
// which porteiro would otherwise ignore without a word. what names the
// file in the message ("a policy").
func Body(file string, f *ast.File, what string) (ast.Node, error) {
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			l, c := NodePos(d.Body)
			return nil, Errorf(file, l, c, "%s is one YAML document; this is a second one (remove the \"---\" line above it)", what)
		}
		body = d.Body
	}
	return body, nil
}

// NodePos returns where a node starts. A block mapping's own token is the
// colon of its first entry, so it is located by its first key instead.
func NodePos(n ast.Node) (int, int) {
	if n == nil {
		return 1, 1
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
		return NodePos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok && mv.Key != nil {
		return NodePos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return tk.Position.Line, tk.Position.Column
}

// Decode checks and parses data, then decodes its one document into v,
// strictly: an unknown key is an error. Every error is an *Error with the
// position of the value at fault when it can be found. It returns the
// tree, so that later checks can place their errors with Locate.
func Decode(file string, data []byte, v any, what string) (*ast.File, error) {
	f, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	body, err := Body(file, f, what)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return f, nil
	}
	if err := decodeStrict(data, v); err != nil {
		return nil, decodeError(file, err, f)
	}
	return f, nil
}

// decodeStrict decodes data into v, rejecting unknown fields. go-yaml
// v1.19.2 panics on some malformed input (a tag on a scalar where a list is
// expected, found by fuzzing).
func decodeStrict(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode the file: a value does not have the expected type (%v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, v, yaml.Strict())
}

var lastQuotedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"([^"]+)"`) })

// decodeError turns a go-yaml decoding error into an *Error. Type errors
// carry a token; errors from nested decoders (such as a time.Duration) do
// not, so the quoted bad value is looked up in the file.
func decodeError(file string, err error, f *ast.File) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg := cleanMessage(ye.GetMessage())
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return Errorf(file, tk.Position.Line, tk.Position.Column, "%s", msg)
		}
		return &Error{File: file, Msg: msg}
	}
	e := &Error{File: file, Msg: cleanMessage(err.Error())}
	// The bad value is usually the last quoted string ("unknown unit "x"
	// in duration "5x"").
	ms := lastQuotedRE().FindAllStringSubmatch(err.Error(), -1)
	for i := len(ms) - 1; i >= 0 && e.Line == 0; i-- {
		e.Line, e.Column = findValue(f, ms[i][1])
	}
	return e
}

// Locate finds the line and column of a path such as
// "$.channels.email[0].host", falling back to its nearest existing parent.
// It returns 0, 0 when nothing on the path is in the file.
func Locate(f *ast.File, path string) (int, int) {
	n := Lookup(f, path)
	if n == nil {
		// Fall back to the nearest parent that is in the file.
		for path != "$" && path != "" && n == nil {
			i := strings.LastIndexAny(path, ".[")
			if i <= 0 {
				break
			}
			path = path[:i]
			n = Lookup(f, path)
		}
	}
	if n == nil {
		return 0, 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line, tk.Position.Column
	}
	return 0, 0
}

// Lookup returns the node at path, or nil.
func Lookup(f *ast.File, path string) ast.Node {
	if f == nil {
		return nil
	}
	p, err := yaml.PathString(path)
	if err != nil {
		return nil
	}
	n, err := p.FilterFile(f)
	if err != nil {
		return nil
	}
	return n
}

func findValue(f *ast.File, v string) (int, int) {
	line, col := 0, 0
	for _, doc := range f.Docs {
		ast.Walk(visitFunc(func(n ast.Node) bool {
			if line > 0 {
				return false
			}
			if tk := n.GetToken(); tk != nil && tk.Value == v && tk.Position != nil {
				if _, ok := n.(*ast.MappingValueNode); !ok {
					line, col = tk.Position.Line, tk.Position.Column
					return false
				}
			}
			return true
		}), doc)
	}
	return line, col
}

type visitFunc func(ast.Node) bool

func (fn visitFunc) Visit(n ast.Node) ast.Visitor {
	if fn(n) {
		return fn
	}
	return nil
}
