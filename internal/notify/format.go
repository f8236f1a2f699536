package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/porteiro/porteiro/inventory"
)

// PayloadVersion is the version of the webhook and exec JSON schema.
const PayloadVersion = 1

// Payload is the JSON body of a webhook POST and the stdin of an exec
// command (docs/alerts.md).
type Payload struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	Channel string `json:"channel"`
	// BatchID is the same on every retry of one batch, so a receiver can
	// drop a batch it has already handled.
	BatchID string    `json:"batch_id"`
	SentAt  time.Time `json:"sent_at"`
	Alerts  []Alert   `json:"alerts"`
}

// marshalPayload encodes one batch as the webhook and exec channels send it.
func marshalPayload(host, channel string, sentAt time.Time, batch []Alert) ([]byte, error) {
	return json.Marshal(Payload{
		Version: PayloadVersion,
		Host:    host,
		Channel: channel,
		BatchID: batchID(batch),
		SentAt:  sentAt.UTC(),
		Alerts:  withHost(batch, host),
	})
}

// batchID derives a stable id from the alert ids: a retry of the same batch
// gets the same id.
func batchID(batch []Alert) string {
	h := sha256.New()
	for _, a := range batch {
		h.Write([]byte(a.ID))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// withHost fills in the host of alerts that lack one, on a copy.
func withHost(batch []Alert, host string) []Alert {
	out := make([]Alert, len(batch))
	copy(out, batch)
	for i := range out {
		if out[i].Host == "" {
			out[i].Host = host
		}
	}
	return out
}

// listenerInfo is what an alert says about its listener, from the socket
// when there is one and from the Listener string otherwise.
type listenerInfo struct {
	proto inventory.Proto
	addr  string // as ss prints it: 0.0.0.0, [::1], *
	port  uint16
	ok    bool
}

func listenerOf(a Alert) listenerInfo {
	if a.Socket != nil && a.Socket.Local.Port != 0 {
		addr := "*"
		if ad := a.Socket.Local.Address; ad.IsValid() {
			addr = ad.Unmap().String()
			if ad.Is6() && !ad.Is4In6() {
				addr = "[" + addr + "]"
			}
		}
		return listenerInfo{proto: a.Socket.Proto, addr: addr, port: a.Socket.Local.Port, ok: true}
	}
	return parseListener(a.Listener)
}

// parseListener parses "tcp 0.0.0.0:4444", "udp [::1]:53" or "tcp *:80".
func parseListener(s string) listenerInfo {
	proto, ep, found := strings.Cut(s, " ")
	if !found {
		return listenerInfo{}
	}
	p, err := inventory.ParseProto(proto)
	if err != nil {
		return listenerInfo{}
	}
	i := strings.LastIndexByte(ep, ':')
	if i <= 0 {
		return listenerInfo{}
	}
	port, err := strconv.ParseUint(ep[i+1:], 10, 16)
	if err != nil || port == 0 {
		return listenerInfo{}
	}
	addr := ep[:i]
	if addr != "*" {
		bare := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if _, err := netip.ParseAddr(bare); err != nil {
			return listenerInfo{}
		}
	}
	return listenerInfo{proto: p, addr: addr, port: uint16(port), ok: true}
}

// whoCommand is the exact command that shows who holds the alert's port.
func whoCommand(l listenerInfo) string {
	if !l.ok {
		return ""
	}
	return fmt.Sprintf("porteiro who %d/%s", l.port, l.proto)
}

// oneLine makes untrusted text (a command line, a comm, a summary) safe for
// a header or a log line: control characters and invalid UTF-8 become
// escapes, so nothing can start a new header or a new log record.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// headline is one line naming an alert: "violation tcp 0.0.0.0:4444 nc".
func headline(a Alert) string {
	if a.Summary != "" {
		return oneLine(a.Summary)
	}
	parts := []string{a.Kind}
	if a.Listener != "" {
		parts = append(parts, a.Listener)
	}
	if a.Socket != nil && len(a.Socket.Processes) > 0 {
		parts = append(parts, a.Socket.Processes[0].Name)
	}
	return oneLine(strings.Join(parts, " "))
}

// subjectLine is the email subject: one alert's headline, or a count by
// kind and the first headlines for a batch.
func subjectLine(prefix, host string, batch []Alert) string {
	var s string
	if len(batch) == 1 {
		s = fmt.Sprintf("%s %s: %s", prefix, host, headline(batch[0]))
		if batch[0].Severity == SeverityCritical && !batch[0].Resolved {
			s = fmt.Sprintf("%s %s: CRITICAL %s", prefix, host, headline(batch[0]))
		}
	} else {
		s = fmt.Sprintf("%s %s: %d alerts (%s): %s", prefix, host, len(batch), kindCounts(batch), headline(batch[0]))
	}
	return truncate(oneLine(strings.TrimSpace(s)), 200)
}

func kindCounts(batch []Alert) string {
	counts := map[string]int{}
	for _, a := range batch {
		counts[a.Kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}

// nextStep says what to do about an alert, for a person reading it at 3 a.m.
func nextStep(a Alert, l listenerInfo) string {
	if a.Detail != "" {
		return oneLine(a.Detail)
	}
	port := "the port"
	if l.ok {
		port = fmt.Sprintf("%d/%s", l.port, l.proto)
	}
	switch {
	case a.Resolved || a.Kind == "resolved":
		return "Nothing: the condition has ended. The history is in porteiro events."
	case a.Finding == "unexpected":
		return "Find out what opened " + port + ". If it is expected, add a rule for it to the policy; if not, stop the process and find out how it got there."
	case a.Finding == "too_exposed":
		return "It listens on more addresses than the policy allows. Bind it to the allowed address (often 127.0.0.1), or widen the rule if the exposure is intended."
	case a.Finding == "wrong_owner":
		return "A process other than the one the policy names holds " + port + ". Check whether the service was replaced or another program took the port first."
	case a.Finding == "missing" || a.Kind == "missing":
		return "A listener the policy requires is not there. Check that its service runs (systemctl status) and read its logs."
	case a.Kind == "restarted":
		return "The service closed and reopened " + port + " within the grace period. Nothing to do unless restarts were not expected."
	case a.Kind == "closed":
		return "If " + port + " should still be open, check the service that held it."
	}
	return "If this was not expected, look at who holds " + port + "."
}

// describe writes the full text of one alert, as in an email body, with
// each line prefixed by indent.
func describe(b *strings.Builder, a Alert, indent string) {
	l := listenerOf(a)
	line := func(label, value string) {
		if value == "" {
			return
		}
		fmt.Fprintf(b, "%s%-10s %s\n", indent, label+":", oneLine(value))
	}
	state := strings.ToUpper(a.Kind)
	if a.Resolved && a.Kind != "resolved" {
		state += " (resolved)"
	}
	fmt.Fprintf(b, "%s%s [%s] %s\n", indent, oneLine(state), oneLine(string(a.Severity)), headline(a))
	line("Host", a.Host)
	if !a.Time.IsZero() {
		line("When", a.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if !a.StartsAt.IsZero() && !a.StartsAt.Equal(a.Time) {
		line("Since", a.StartsAt.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if l.ok {
		line("Port", fmt.Sprintf("%d/%s on %s%s", l.port, l.proto, l.addr, exposureNote(a)))
	} else {
		line("Listener", a.Listener)
	}
	if a.Socket != nil {
		if len(a.Socket.Processes) == 0 && a.Socket.UnattributedReason != "" {
			line("Process", "unknown: "+a.Socket.UnattributedReason.Hint())
		}
		for _, p := range a.Socket.Processes {
			proc := fmt.Sprintf("%s (pid %d", p.Name, p.PID)
			if p.Unit != "" {
				proc += ", unit " + p.Unit
			}
			if p.Container != "" {
				proc += ", container " + p.Container
			}
			proc += ")"
			line("Process", proc)
			user := p.User
			if user == "" {
				user = strconv.FormatUint(uint64(p.UID), 10)
			}
			line("User", fmt.Sprintf("%s (uid %d)", user, p.UID))
			line("Command", truncate(p.CommandLine(), 1000))
			exe := p.Exe
			if p.ExeDeleted {
				exe += " (deleted or replaced on disk)"
			}
			line("Exe", exe)
			if !p.StartTime.IsZero() {
				line("Started", p.StartTime.UTC().Format("2006-01-02 15:04:05 MST"))
			}
		}
	}
	if a.Rule != "" || a.RuleReason != "" {
		rule := "rule " + strconv.Quote(a.Rule)
		if a.Rule == "" {
			rule = "no rule"
		}
		if a.RuleReason != "" {
			rule += ": " + a.RuleReason
		}
		line("Policy", rule)
	}
	line("Finding", a.Finding)
	line("Event id", a.ID)
	line("Next", nextStep(a, l))
	if who := whoCommand(l); who != "" && !a.Resolved {
		fmt.Fprintf(b, "%s%-10s %s\n", indent, "", who)
	}
	if l.ok {
		fmt.Fprintf(b, "%s%-10s porteiro events --since 24h --port %d\n", indent, "", l.port)
	}
}

func exposureNote(a Alert) string {
	if a.Socket == nil {
		return ""
	}
	switch a.Socket.Exposure {
	case inventory.ExposureAll:
		return " (all interfaces)"
	case inventory.ExposureLoopback:
		return " (loopback only)"
	case inventory.ExposureSpecific:
		return " (one address)"
	}
	return ""
}

// bodyText is the plain-text body of an email for a batch.
func bodyText(host string, batch []Alert) string {
	var b strings.Builder
	if len(batch) == 1 {
		fmt.Fprintf(&b, "porteiro on %s reports:\n\n", oneLine(host))
		describe(&b, batch[0], "")
	} else {
		fmt.Fprintf(&b, "porteiro on %s reports %d alerts (%s):\n", oneLine(host), len(batch), kindCounts(batch))
		for i, a := range batch {
			fmt.Fprintf(&b, "\n%d. ", i+1)
			var one strings.Builder
			describe(&one, a, "   ")
			b.WriteString(strings.TrimPrefix(one.String(), "   "))
		}
	}
	b.WriteString("\n-- \nSent by porteiro. Every alert carries an event id: an alert that\n" +
		"arrives twice (after a retry) has the same id both times.\n")
	return b.String()
}

// MarshalPayload is the body the webhook and exec channels send for
// batch; docs examples are generated from it.
func MarshalPayload(host, channel string, sentAt time.Time, batch []Alert) ([]byte, error) {
	return marshalPayload(host, channel, sentAt, batch)
}
