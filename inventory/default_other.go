//go:build !linux

package inventory

import "context"

type stubSource struct{}

func (stubSource) Name() string { return "stub" }
func (stubSource) Sockets(context.Context, Query) ([]Socket, error) {
	return nil, ErrUnsupported
}

// DefaultSource returns the platform's socket source.
func DefaultSource(procRoot string) SocketSource { return stubSource{} }

type stubResolver struct{}

func (stubResolver) Resolve(context.Context, map[uint64]struct{}) (*Owners, error) {
	return nil, ErrUnsupported
}

// DefaultResolver returns the platform's owner resolver.
func DefaultResolver(procRoot string) OwnerResolver { return stubResolver{} }

func selfNetNS(procRoot string) uint64                     { return 0 }
func processAlive(procRoot string, pid int, t uint64) bool { return false }
