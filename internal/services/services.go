// Package services maps service names to ports, from /etc/services.
package services

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Table maps "name/proto" to a port.
type Table map[string]uint16

// Parse reads the services(5) format: "name port/proto [aliases...] [# comment]".
// Malformed lines are skipped, as libc does.
func Parse(r io.Reader) (Table, error) {
	t := Table{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portS, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portS, 10, 16)
		if err != nil || port == 0 {
			continue
		}
		proto = strings.ToLower(proto)
		for _, name := range append([]string{f[0]}, f[2:]...) {
			k := strings.ToLower(name) + "/" + proto
			if _, dup := t[k]; !dup {
				t[k] = uint16(port)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading services: %w", err)
	}
	return t, nil
}

// Lookup returns the port of a service for proto ("tcp"/"udp"); with proto
// "" it tries tcp, then udp.
//
// A name listed for the other protocol only is found too: IANA registers a
// service's number for both TCP and UDP (ssh is 22/tcp and 22/udp), but
// Debian's /etc/services lists only the protocol in use, and "ssh/udp"
// must not be "not in /etc/services".
func (t Table) Lookup(name, proto string) (uint16, bool) {
	name = strings.ToLower(name)
	switch proto {
	case "udp":
		if p, ok := t[name+"/udp"]; ok {
			return p, true
		}
		p, ok := t[name+"/tcp"]
		return p, ok
	case "tcp", "":
		if p, ok := t[name+"/tcp"]; ok {
			return p, true
		}
		p, ok := t[name+"/udp"]
		return p, ok
	}
	return 0, false
}

// Name returns the service name of a port, or "".
func (t Table) Name(port uint16, proto string) string {
	best := ""
	for k, p := range t {
		if p != port {
			continue
		}
		n, pr, _ := strings.Cut(k, "/")
		if pr == proto && (best == "" || n < best) {
			best = n
		}
	}
	return best
}

// fallback covers the common services when /etc/services is missing (as in
// minimal containers).
var fallback = Table{
	"ssh/tcp": 22, "smtp/tcp": 25, "domain/tcp": 53, "domain/udp": 53, "dns/tcp": 53, "dns/udp": 53,
	"http/tcp": 80, "https/tcp": 443, "ntp/udp": 123, "submission/tcp": 587, "imaps/tcp": 993,
	"postgresql/tcp": 5432, "mysql/tcp": 3306, "redis/tcp": 6379, "snmp/udp": 161,
}

var (
	once    sync.Once
	system  Table
	sysPath = "/etc/services"
)

// System returns the host's table, or a small built-in one when
// /etc/services cannot be read.
func System() Table {
	once.Do(func() {
		f, err := os.Open(sysPath)
		if err == nil {
			defer f.Close()
			if t, err := Parse(f); err == nil && len(t) > 0 {
				system = t
				return
			}
		}
		system = fallback
	})
	return system
}
