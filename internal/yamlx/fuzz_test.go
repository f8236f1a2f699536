package yamlx

import (
	"errors"
	"testing"

	"github.com/goccy/go-yaml/ast"

	"github.com/porteiro/porteiro/internal/yamlx/yamlxtest"
)

// FuzzParse checks that no input crashes the scan or the parser, that
// every error has a position, and that what Check accepts is within the
// limits once parsed: the parser never sees deeper nesting.
func FuzzParse(f *testing.F) {
	f.Add([]byte("a: 1\n"))
	f.Add([]byte(yamlxtest.NestedBrackets("a", 80)))
	f.Add([]byte(yamlxtest.NestedMappings("a", 80)))
	f.Add([]byte(yamlxtest.AliasBomb("", "c0", 5)))
	f.Add([]byte(yamlxtest.BlockAliasBomb(5)))
	f.Add([]byte("a: |\n  [[[\nb: '[[''\n'\nc: \"\\\"[\"\n"))
	f.Add([]byte("a: 1\n---\nb: &x\n  - *x\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		f, err := Parse("f.yaml", data)
		if err == nil {
			// What the scan let through is no deeper than its limit
			// (with room for the keys and anchors it counts apart).
			for _, d := range f.Docs {
				if n := depth(d.Body, 0); n > 3*MaxDepth {
					t.Fatalf("a tree %d deep passed the scan", n)
				}
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "f.yaml" || e.Line < 1 || e.Column < 1 {
			t.Fatalf("error without a position: %v", err)
		}
	})
}

// depth is how deeply n nests, stopping early past any limit of interest.
func depth(n ast.Node, d int) int {
	if d > 4*MaxDepth {
		return d
	}
	best := d
	visit := func(c ast.Node) {
		if c != nil {
			if x := depth(c, d+1); x > best {
				best = x
			}
		}
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			visit(mv)
		}
	case *ast.MappingValueNode:
		visit(v.Key)
		visit(v.Value)
	case *ast.SequenceNode:
		for _, x := range v.Values {
			visit(x)
		}
	case *ast.AnchorNode:
		visit(v.Value)
	case *ast.TagNode:
		visit(v.Value)
	}
	return best
}
