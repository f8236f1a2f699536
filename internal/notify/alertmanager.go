package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// amBatchMax bounds one POST, so a Refresh of a very large active set does
// not build one huge request.
const amBatchMax = 500

// amAlert is Alertmanager API v2's postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// reservedLabel reports whether porteiro sets the label itself, so the
// config may not.
func reservedLabel(k string) bool {
	switch k {
	case "alertname", "instance", "listener", "proto", "port", "finding", "severity", "netns", "container":
		return true
	}
	return false
}

type alertmanagerSink struct {
	base
	host      string
	url       string
	header    http.Header
	labels    map[string]string
	generator string
	resend    time.Duration
	client    *http.Client
	timeout   time.Duration
	now       func() time.Time

	// severities remembers the severity label each firing alert was sent
	// with, so a resolution (which may carry another severity) ends the
	// same Alertmanager alert. After a restart it is empty; see toAM.
	mu         sync.Mutex
	severities map[string]Severity
}

func newAlertmanagerSink(c AlertmanagerConfig, host string) (*alertmanagerSink, error) {
	tlsCfg, err := tlsConfig("", c.CAFile, c.TLSSkipVerify)
	if err != nil {
		return nil, &FieldError{Path: "ca_file", Err: err}
	}
	h := http.Header{}
	if c.Username != "" {
		pw, err := readSecret(c.PasswordFile, c.PasswordEnv)
		if err != nil {
			return nil, &FieldError{Path: secretField("password", c.PasswordFile), Err: fmt.Errorf("loading the alertmanager password: %w", err)}
		}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.Username+":"+pw)))
	}
	timeout := orDefault(c.Timeout, DefaultTimeout)
	return &alertmanagerSink{
		base:       base{name: effectiveName("alertmanager", c.Name), filter: c.Filter},
		host:       host,
		url:        strings.TrimRight(c.URL, "/") + "/api/v2/alerts",
		header:     h,
		labels:     c.Labels,
		generator:  c.GeneratorURL,
		resend:     orDefault(c.ResendInterval, DefaultResendInterval),
		client:     httpClient(tlsCfg, timeout),
		timeout:    timeout,
		now:        time.Now,
		severities: map[string]Severity{},
	}, nil
}

func (s *alertmanagerSink) refreshInterval() time.Duration { return s.resend }

// Send posts the batch: firing alerts stay firing for three resend
// intervals, resolved ones end at the time of their event.
func (s *alertmanagerSink) Send(ctx context.Context, batch []Alert) error {
	return s.post(ctx, batch)
}

// Refresh re-sends every still-firing alert, moving its endsAt forward.
func (s *alertmanagerSink) Refresh(ctx context.Context, active []Alert) error {
	var firing []Alert
	for _, a := range active {
		if !a.Resolved && s.Accepts(a) {
			firing = append(firing, a)
		}
	}
	return s.post(ctx, firing)
}

func (s *alertmanagerSink) post(ctx context.Context, batch []Alert) error {
	for len(batch) > 0 {
		n := min(len(batch), amBatchMax)
		if err := s.postChunk(ctx, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

func (s *alertmanagerSink) postChunk(ctx context.Context, batch []Alert) error {
	now := s.now().UTC()
	out := make([]amAlert, 0, len(batch))
	s.mu.Lock()
	for _, a := range withHost(batch, s.host) {
		out = append(out, s.toAM(a, now)...)
	}
	s.mu.Unlock()
	body, err := json.Marshal(out)
	if err != nil {
		return Permanent(fmt.Errorf("encoding alertmanager alerts: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := postJSON(ctx, s.client, s.url, body, s.header); err != nil {
		return fmt.Errorf("alertmanager channel %q: %w", s.name, err)
	}
	return nil
}

// toAM converts one alert; s.mu is held. A resolution whose firing
// severity is unknown (porteiro restarted in between) is sent once per
// severity: Alertmanager matches alerts by their whole label set, and a
// resolution for an alert that never fired is harmless (it is stored as
// resolved and notifies no one).
func (s *alertmanagerSink) toAM(a Alert, now time.Time) []amAlert {
	labels := amLabels(a, s.labels)
	key := identityKey(labels)
	severities := []string{labels["severity"]}
	if a.Resolved {
		if sev, ok := s.severities[key]; ok {
			severities = []string{string(sev)}
			delete(s.severities, key)
		} else {
			for _, sev := range []Severity{SeverityInfo, SeverityWarning, SeverityCritical} {
				if string(sev) != labels["severity"] {
					severities = append(severities, string(sev))
				}
			}
		}
	} else {
		if len(s.severities) > 100000 {
			clear(s.severities) // bounded memory; see the field comment
		}
		s.severities[key] = Severity(labels["severity"])
	}
	starts := a.StartsAt
	if starts.IsZero() {
		starts = a.Time
	}
	if starts.IsZero() || starts.After(now) {
		starts = now
	}
	var ends time.Time
	if a.Resolved {
		ends = a.Time
		if ends.IsZero() || ends.After(now) {
			ends = now
		}
		if ends.Before(starts) {
			ends = starts
		}
	} else {
		ends = now.Add(3 * s.resend)
	}
	ann := amAnnotations(a)
	out := make([]amAlert, 0, len(severities))
	for _, sev := range severities {
		l := labels
		if sev != labels["severity"] {
			l = maps.Clone(labels)
			l["severity"] = sev
		}
		out = append(out, amAlert{
			Labels:       l,
			Annotations:  ann,
			StartsAt:     starts.UTC(),
			EndsAt:       ends.UTC(),
			GeneratorURL: s.generator,
		})
	}
	return out
}

// identityKey is the label set without severity.
func identityKey(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "severity" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// alertName names the Alertmanager alert. A violation and its resolution
// get the same name, so the resolution ends the firing alert. No name may
// be PorteiroPolicyViolation: that is the aggregate alert of the
// Prometheus rules, which the detailed alerts inhibit.
func alertName(a Alert) string {
	switch a.Finding {
	case "unexpected":
		return "PorteiroUnexpectedListener"
	case "missing":
		return "PorteiroMissingListener"
	case "wrong_owner":
		return "PorteiroWrongOwner"
	case "too_exposed":
		return "PorteiroTooExposed"
	case "":
	default:
		return "PorteiroListenerViolation"
	}
	switch a.Kind {
	case "violation", "resolved":
		return "PorteiroListenerViolation"
	case "missing":
		return "PorteiroMissingListener"
	case "opened":
		return "PorteiroListenerOpened"
	case "closed":
		return "PorteiroListenerClosed"
	case "owner_changed":
		return "PorteiroListenerOwnerChanged"
	case "restarted":
		return "PorteiroListenerRestarted"
	}
	return "PorteiroEvent"
}

// amLabels builds the bounded label set: nothing that changes while a
// violation lasts (no pid, no command line) may be a label, or every
// restart of the offender would look like a new alert.
func amLabels(a Alert, extra map[string]string) map[string]string {
	labels := make(map[string]string, 8+len(extra))
	for k, v := range extra {
		labels[k] = v
	}
	labels["alertname"] = alertName(a)
	labels["instance"] = a.Host
	sev := a.Severity
	if sev == "" {
		sev = SeverityInfo
	}
	labels["severity"] = string(sev)
	l := listenerOf(a)
	if a.Listener != "" {
		labels["listener"] = a.Listener
	} else if l.ok {
		labels["listener"] = fmt.Sprintf("%s %s:%d", l.proto, l.addr, l.port)
	}
	if l.ok {
		labels["proto"] = string(l.proto)
		labels["port"] = strconv.Itoa(int(l.port))
	}
	if a.Finding != "" {
		labels["finding"] = a.Finding
	}
	// The namespace and the container, by name: they stay the same when
	// a container is recreated (its namespace's inode does not).
	if so := a.Socket; so != nil && so.NetNSName != "" && so.NetNSName != "host" {
		labels["netns"] = so.NetNSName
		labels["container"] = so.ContainerName()
	}
	for k, v := range labels {
		labels[k] = strings.ToValidUTF8(oneLine(v), "?")
		if labels[k] == "" {
			delete(labels, k) // Alertmanager treats an empty label as absent
		}
	}
	return labels
}

// amAnnotations carries the details, which may change from one send to
// the next without changing the alert's identity.
func amAnnotations(a Alert) map[string]string {
	ann := map[string]string{
		"summary":  headline(a),
		"kind":     a.Kind,
		"event_id": a.ID,
	}
	var desc strings.Builder
	describe(&desc, a, "")
	ann["description"] = desc.String()
	l := listenerOf(a)
	if who := whoCommand(l); who != "" {
		ann["who"] = who
	}
	ann["next"] = nextStep(a, l)
	if a.Socket != nil && len(a.Socket.Processes) > 0 {
		var procs, users []string
		for _, p := range a.Socket.Processes {
			procs = append(procs, fmt.Sprintf("%s (pid %d)", oneLine(p.Name), p.PID))
			users = append(users, oneLine(p.User))
		}
		ann["process"] = strings.Join(procs, ", ")
		ann["user"] = strings.Join(users, ", ")
		ann["cmdline"] = truncate(oneLine(a.Socket.Processes[0].CommandLine()), 1024)
		ann["exe"] = oneLine(a.Socket.Processes[0].Exe)
	}
	if a.Rule != "" {
		ann["rule"] = oneLine(a.Rule)
	}
	if a.RuleReason != "" {
		ann["rule_reason"] = oneLine(a.RuleReason)
	}
	for k, v := range ann {
		if v == "" {
			delete(ann, k)
		}
	}
	return ann
}
