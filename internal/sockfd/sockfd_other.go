//go:build !linux

package sockfd

import "errors"

// ErrRefused is what every call returns off Linux: there is no pidfd.
var ErrRefused = errors.New("pidfd_getfd not supported on this operating system")
