// Package taskstats asks the kernel's taskstats genetlink family about a
// process: its command name and user, as the kernel keeps them. It is a
// view of processes that does not go through /proc, so it still names a
// process that /proc hides.
//
// The client is written by hand, as internal/sockdiag is: two requests,
// a few attributes, and the porteiro binary's size budget leaves no room
// for a general netlink library.
package taskstats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// From linux/genetlink.h and linux/taskstats.h.
const (
	genlIDCtrl         = 0x10
	ctrlCmdGetFamily   = 3
	ctrlAttrFamilyID   = 1
	ctrlAttrFamilyName = 2
	cmdGet             = 1
	cmdAttrPID         = 1
	typePID            = 1
	typeStats          = 3
	typeAggrPID        = 4
	genlHeaderLen      = 4
	nlmsgHeaderLen     = 16
	familyName         = "TASKSTATS"
	offComm, lenComm   = 80, 32
	offUID, offPID     = 120, 128
	minStatsLen        = offPID + 4
	nlmsgError         = 2
	nlmsgDone          = 3
	nlaHeaderLen       = 4
	nlaTypeMask        = 0x3fff
	maxReply           = 1 << 16
)

// Task is what the kernel says of a process.
type Task struct {
	PID  int
	Comm string
	UID  uint32
}

// ErrNoFamily means the kernel has no taskstats (CONFIG_TASKSTATS off).
var ErrNoFamily = errors.New("the kernel has no taskstats family")

// attrs calls fn for each netlink attribute in b.
func attrs(b []byte, fn func(typ uint16, val []byte) error) error {
	for len(b) >= nlaHeaderLen {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < nlaHeaderLen || l > len(b) {
			return fmt.Errorf("taskstats: attribute of length %d in %d bytes", l, len(b))
		}
		if err := fn(typ, b[nlaHeaderLen:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return nil
}

// ParseFamilyID reads the family id from a CTRL_CMD_GETFAMILY reply's
// payload (after the genetlink header).
func ParseFamilyID(payload []byte) (uint16, error) {
	var id uint16
	err := attrs(payload, func(typ uint16, val []byte) error {
		if typ == ctrlAttrFamilyID && len(val) >= 2 {
			id = binary.NativeEndian.Uint16(val)
		}
		return nil
	})
	if err == nil && id == 0 {
		err = ErrNoFamily
	}
	return id, err
}

// ParseReply reads a TASKSTATS_CMD_GET reply's payload (after the
// genetlink header): the pid and the struct taskstats in it.
func ParseReply(payload []byte) (Task, error) {
	var t Task
	found := false
	err := attrs(payload, func(typ uint16, val []byte) error {
		if typ != typeAggrPID {
			return nil
		}
		return attrs(val, func(typ uint16, val []byte) error {
			switch typ {
			case typePID:
				if len(val) >= 4 {
					t.PID = int(binary.NativeEndian.Uint32(val))
				}
			case typeStats:
				if len(val) < minStatsLen {
					return fmt.Errorf("taskstats: struct of %d bytes, want at least %d", len(val), minStatsLen)
				}
				comm := val[offComm : offComm+lenComm]
				if i := bytes.IndexByte(comm, 0); i >= 0 {
					comm = comm[:i]
				}
				t.Comm = string(comm)
				t.UID = binary.NativeEndian.Uint32(val[offUID:])
				found = true
			}
			return nil
		})
	})
	if err == nil && !found {
		err = errors.New("taskstats: reply without stats")
	}
	return t, err
}
