package services

import (
	"fmt"
	"strconv"
)

// PortArg turns a port given on the command line, a number (1-65535) or a
// service name from /etc/services, into its number as a string. "" stays
// "" (any port).
func PortArg(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 65535 {
			return "", fmt.Errorf("%q is not a port number (1-65535)", s)
		}
		return strconv.Itoa(n), nil
	}
	p, ok := System().Lookup(s, "")
	if !ok {
		return "", fmt.Errorf("%q is neither a port number nor a service name in /etc/services", s)
	}
	return strconv.Itoa(int(p)), nil
}
