package procfs

// Holder is one (pid, fd) that holds a socket inode.
type Holder struct {
	PID int
	FD  int
}
