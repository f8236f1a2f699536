package inventory

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
)

// maxFibTrie bounds one read of /proc/PID/net/fib_trie.
const maxFibTrie = 1 << 20

// linkForwards says, on each docker-proxy socket, which container and port
// it forwards to: the address in docker-proxy's command line is looked up
// among the local addresses of the container namespaces the scan read.
func (s *Scanner) linkForwards(socks []Socket) {
	var idx []int
	for i := range socks {
		if len(socks[i].Processes) > 0 && socks[i].Processes[0].Name == "docker-proxy" {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	byAddr := map[netip.Addr]NamespaceInfo{}
	if nn, ok := s.opts.Source.(namespaceNamer); ok {
		_, names := nn.notesAndNames()
		for _, ni := range names {
			if ni.Container == nil || ni.Member == 0 {
				continue
			}
			for _, a := range readLocalAddrs(s.opts.ProcRoot, ni.Member) {
				byAddr[a] = ni
			}
		}
	}
	for _, i := range idx {
		f, ok := forwardOf(socks[i].Processes)
		if !ok {
			continue
		}
		if ni, ok := byAddr[f.Address.Unmap()]; ok {
			f.NetNS, f.NetNSName, f.Container = ni.Inode, ni.Name, ni.Container
		}
		socks[i].Forward = f
	}
}

// readLocalAddrs reads the local IPv4 addresses of pid's namespace.
func readLocalAddrs(procRoot string, pid int) []netip.Addr {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "net/fib_trie"))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxFibTrie))
	return ParseFibTrieLocal(b)
}
