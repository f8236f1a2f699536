//go:build !linux

package container

import "errors"

// errUnsupported is returned on systems without procfs: porteiro reads
// container state on Linux only.
var errUnsupported = errors.New("container state is read on Linux only")

func readBounded(path string, max int64) ([]byte, error) { return nil, errUnsupported }
