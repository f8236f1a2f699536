package kview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// ErrNotSupported is wrapped when the kernel refuses the iterators: no BTF,
// a kernel older than 5.9 (iter/udp), or no CAP_BPF and CAP_PERFMON.
var ErrNotSupported = errors.New("the kernel view (BPF iterators) is not available")

// Programs holds the four loaded and attached iterators.
type Programs struct {
	objs  kviewObjects
	links [4]*link.Iter // tcp, udp, task, task_file
}

// Open loads and attaches the iterators. Close releases them.
func Open() (*Programs, error) {
	spec, err := loadKview()
	if err != nil {
		return nil, fmt.Errorf("loading kernel view programs: %w", err)
	}
	p := &Programs{}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, loadError("loading kernel view programs", err)
	}
	for i, prog := range []*ebpf.Program{p.objs.DumpTcp, p.objs.DumpUdp, p.objs.DumpTask, p.objs.DumpTaskFile} {
		l, err := link.AttachIter(link.IterOptions{Program: prog})
		if err != nil {
			p.Close()
			return nil, loadError("attaching kernel view iterator", err)
		}
		p.links[i] = l
	}
	return p, nil
}

func loadError(op string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%s: %w: rejected by the verifier: %v", op, ErrNotSupported, ve)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s: %w: %v", op, ErrNotSupported, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Close detaches and unloads everything.
func (p *Programs) Close() error {
	for _, l := range p.links {
		if l != nil {
			l.Close()
		}
	}
	return p.objs.Close()
}

// Sockets runs iter/tcp and iter/udp. Both walk the sockets of the network
// namespace of the calling thread at this moment, so the caller runs it on a
// locked OS thread that has joined the namespace it wants.
func (p *Programs) Sockets(ctx context.Context, fn func(Record)) error {
	if err := p.run(ctx, 0, fn); err != nil {
		return err
	}
	return p.run(ctx, 1, fn)
}

// Tasks runs iter/task: every process, one record per thread group.
func (p *Programs) Tasks(ctx context.Context, fn func(Record)) error { return p.run(ctx, 2, fn) }

// TaskFiles runs iter/task_file: every TCP and UDP socket that a process
// holds, in every network namespace, with the process.
func (p *Programs) TaskFiles(ctx context.Context, fn func(Record)) error {
	return p.run(ctx, 3, fn)
}

var names = [4]string{"iter/tcp", "iter/udp", "iter/task", "iter/task_file"}

func (p *Programs) run(ctx context.Context, i int, fn func(Record)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := p.links[i].Open()
	if err != nil {
		return fmt.Errorf("opening %s: %w", names[i], err)
	}
	defer r.Close()
	// The seq_file hands out whole records; reading into a buffer that
	// holds many of them keeps the syscalls few.
	buf := make([]byte, RecordSize*512)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			whole := len(pending) - len(pending)%RecordSize
			if perr := ParseAll(pending[:whole], fn); perr != nil {
				return fmt.Errorf("reading %s: %w", names[i], perr)
			}
			pending = append(pending[:0], pending[whole:]...)
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", names[i], err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if len(pending) != 0 {
		return fmt.Errorf("reading %s: %w: %d trailing bytes", names[i], ErrBadRecord, len(pending))
	}
	return nil
}
