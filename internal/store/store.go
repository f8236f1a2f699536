// Package store is porteiro's durable memory: the event history and the
// alert outbox, in one embedded SQLite database (modernc.org/sqlite, no cgo).
//
// An event and the outbox rows that announce it are written in one
// transaction, so a crash at any point either keeps both or neither: no
// event is lost once Record returns, and no alert exists without its event.
// The database runs in WAL mode with synchronous=FULL. Events are rare (they
// happen on changes, not on scans), so paying one fsync per commit costs
// nothing measurable and keeps the last commits across a power loss, which
// synchronous=NORMAL would not.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database's name inside the state directory.
const FileName = "porteiro.db"

// ErrNotFound is returned when a read-only open finds no database.
var ErrNotFound = errors.New("no event database")

// Outbox row states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
	StateDropped   = "dropped"
)

// DefaultMaxPending bounds each channel's queue of undelivered alerts.
const DefaultMaxPending = 10000

// Store is an open event database. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	path     string
	readOnly bool
	lock     *os.File // the state directory's lock, for a writer
	// MaxPending bounds each channel's pending alerts; the oldest are
	// dropped beyond it, so a channel that is down for weeks cannot fill
	// the disk.
	MaxPending int
	// OnDrop, when set, is told after each commit how many pending alerts
	// of a channel the bound dropped, so they can be counted and logged.
	OnDrop func(channel string, n int64)
}

const schema = `
CREATE TABLE IF NOT EXISTS events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	uid      TEXT    NOT NULL UNIQUE,
	time     INTEGER NOT NULL,
	kind     TEXT    NOT NULL,
	severity TEXT    NOT NULL,
	listener TEXT    NOT NULL,
	port     INTEGER NOT NULL,
	proto    TEXT    NOT NULL,
	pid      INTEGER NOT NULL,
	payload  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_port ON events(port, time);
CREATE TABLE IF NOT EXISTS outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id     TEXT    NOT NULL,
	event_id     INTEGER NOT NULL,
	channel      TEXT    NOT NULL,
	payload      TEXT    NOT NULL,
	created      INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT '',
	state        TEXT    NOT NULL DEFAULT 'pending',
	done         INTEGER NOT NULL DEFAULT 0,
	UNIQUE (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, channel, id);
CREATE TABLE IF NOT EXISTS active (
	key      TEXT    PRIMARY KEY,
	kind     TEXT    NOT NULL,
	since    INTEGER NOT NULL,
	event_id INTEGER NOT NULL,
	alert    TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
`

// Open opens (creating if needed) the database in dir, for writing. The
// directory must be trusted (see checkTrusted), and Open takes its lock: a
// second writer gets a *LockedError naming the first.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	if err := checkTrusted(dir); err != nil {
		return nil, err
	}
	lk, err := lock(dir)
	if err != nil {
		return nil, err
	}
	s, err := open(dir)
	if err != nil {
		lk.Close()
		return nil, err
	}
	s.lock = lk
	return s, nil
}

func open(dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// One connection: every write is serialised in-process, so the daemon
	// never sees SQLITE_BUSY from itself. Queries are short.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating schema in %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("setting WAL mode on %s: got %q: %v", path, mode, err)
	}
	return &Store{db: db, path: path, MaxPending: DefaultMaxPending}, nil
}

// OpenReadOnly opens an existing database in dir for reading, as
// `porteiro events` does while the daemon writes to it.
func OpenReadOnly(dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNotFound, path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	return &Store{db: db, path: path, readOnly: true}, nil
}

// Path returns the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database, and releases the state directory's lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// NewUID returns a random event id: 128 bits in hex. Receivers use it to
// drop duplicates of an at-least-once delivery, so it must be unique across
// hosts and across a wiped database, which an autoincrement is not.
func NewUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Event is one recorded event.
type Event struct {
	ID       int64     `json:"id"`
	UID      string    `json:"uid"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"`
	Listener string    `json:"listener"`
	Port     uint16    `json:"port"`
	Proto    string    `json:"proto"`
	PID      int       `json:"pid"`
	// Payload is the socket and owners as seen at detection, and the
	// event's details (docs/watch.md).
	Payload json.RawMessage `json:"payload"`
}

// Delivery is one outbox row to create with an event: the alert for one
// channel.
type Delivery struct {
	Channel string
	AlertID string
	Payload []byte
}

// NewEvent is an event to record with its deliveries.
type NewEvent struct {
	Event
	Deliveries []Delivery
}

// Active is a policy finding that is currently firing.
type Active struct {
	Key     string
	Kind    string
	Since   time.Time
	EventID int64
	// Alert is the JSON of the alert that announced it.
	Alert json.RawMessage
}

// ActiveUpdate sets one firing finding. EventIndex, when >= 0, is the
// index in Batch.Events of the event that announced it, whose id is not
// known before the insert.
type ActiveUpdate struct {
	Active
	EventIndex int
}

// Batch is everything one scan changes, written in one transaction.
type Batch struct {
	Events []NewEvent
	// SetActive adds or replaces firing findings.
	SetActive []ActiveUpdate
	// ClearActive removes findings that resolved.
	ClearActive []string
	// KV sets small state values (the last listener set).
	KV map[string][]byte
}

// Record writes a batch atomically and returns the ids of the new events.
func (s *Store) Record(ctx context.Context, b Batch) ([]int64, error) {
	if s.readOnly {
		return nil, fmt.Errorf("recording events in %s: store is read-only", s.path)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("recording events in %s: %w", s.path, err)
	}
	defer tx.Rollback()
	ids := make([]int64, len(b.Events))
	touched := map[string]bool{}
	for i, e := range b.Events {
		if e.UID == "" {
			e.UID = NewUID()
		}
		payload := e.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("{}")
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO events(uid, time, kind, severity, listener, port, proto, pid, payload) VALUES(?,?,?,?,?,?,?,?,?)`,
			e.UID, e.Time.UnixNano(), e.Kind, e.Severity, e.Listener, int(e.Port), e.Proto, e.PID, string(payload))
		if err != nil {
			return nil, fmt.Errorf("inserting %s event: %w", e.Kind, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("inserting %s event: %w", e.Kind, err)
		}
		ids[i] = id
		now := e.Time.UnixNano()
		for _, d := range e.Deliveries {
			if _, err := tx.ExecContext(ctx,
				`INSERT OR IGNORE INTO outbox(alert_id, event_id, channel, payload, created, next_attempt) VALUES(?,?,?,?,?,?)`,
				d.AlertID, id, d.Channel, string(d.Payload), now, now); err != nil {
				return nil, fmt.Errorf("queueing alert for channel %s: %w", d.Channel, err)
			}
			touched[d.Channel] = true
		}
	}
	for _, a := range b.SetActive {
		evID := a.EventID
		if a.EventIndex >= 0 && a.EventIndex < len(ids) {
			evID = ids[a.EventIndex]
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT OR REPLACE INTO active(key, kind, since, event_id, alert) VALUES(?,?,?,?,?)`,
			a.Key, a.Kind, a.Since.UnixNano(), evID, string(a.Alert)); err != nil {
			return nil, fmt.Errorf("saving active finding: %w", err)
		}
	}
	for _, k := range b.ClearActive {
		if _, err := tx.ExecContext(ctx, `DELETE FROM active WHERE key = ?`, k); err != nil {
			return nil, fmt.Errorf("clearing active finding: %w", err)
		}
	}
	for k, v := range b.KV {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO kv(key, value) VALUES(?,?)`, k, v); err != nil {
			return nil, fmt.Errorf("saving state %s: %w", k, err)
		}
	}
	dropped := map[string]int64{}
	if s.MaxPending > 0 {
		for ch := range touched {
			// Drop the oldest beyond the bound; they stay visible as
			// state 'dropped', and OnDrop counts them.
			res, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'dropped', last_error = 'outbox full', done = ?
				WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND channel = ? ORDER BY id DESC LIMIT -1 OFFSET ?)`,
				time.Now().UnixNano(), ch, s.MaxPending)
			if err != nil {
				return nil, fmt.Errorf("bounding outbox of %s: %w", ch, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				dropped[ch] = n
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing events to %s: %w", s.path, err)
	}
	if s.OnDrop != nil {
		for ch, n := range dropped {
			s.OnDrop(ch, n)
		}
	}
	return ids, nil
}

// Filter selects events.
type Filter struct {
	// Since keeps events at or after this time; zero means all.
	Since time.Time
	// Port keeps events of this port; 0 means any.
	Port int
	// Kind keeps events of this kind; empty means any.
	Kind string
	// Limit keeps the newest Limit events; 0 means 1000.
	Limit int
}

// Events returns events matching f, oldest first.
func (s *Store) Events(ctx context.Context, f Filter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var where []string
	var args []any
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if f.Port > 0 {
		where = append(where, "port = ?")
		args = append(args, f.Port)
	}
	if f.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, f.Kind)
	}
	q := `SELECT id, uid, time, kind, severity, listener, port, proto, pid, payload FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY time DESC, id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying events in %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t int64
		var port int
		var payload string
		if err := rows.Scan(&e.ID, &e.UID, &t, &e.Kind, &e.Severity, &e.Listener, &port, &e.Proto, &e.PID, &payload); err != nil {
			return nil, fmt.Errorf("reading events in %s: %w", s.path, err)
		}
		e.Time = time.Unix(0, t)
		e.Port = uint16(port)
		e.Payload = json.RawMessage(payload)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading events in %s: %w", s.path, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// ActiveFindings returns the findings that are firing.
func (s *Store) ActiveFindings(ctx context.Context) ([]Active, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, kind, since, event_id, alert FROM active ORDER BY since, key`)
	if err != nil {
		return nil, fmt.Errorf("reading active findings in %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []Active
	for rows.Next() {
		var a Active
		var since int64
		var alert string
		if err := rows.Scan(&a.Key, &a.Kind, &since, &a.EventID, &alert); err != nil {
			return nil, fmt.Errorf("reading active findings in %s: %w", s.path, err)
		}
		a.Since = time.Unix(0, since)
		a.Alert = json.RawMessage(alert)
		out = append(out, a)
	}
	return out, rows.Err()
}

// KV returns a state value, or nil when unset.
func (s *Store) KV(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state %s in %s: %w", key, s.path, err)
	}
	return v, nil
}

// Prune applies retention: it deletes events older than maxAge (0: keep)
// and the oldest beyond maxEvents (0: keep), and finished outbox rows whose
// event is gone. Pending alerts are kept: they are still owed. It returns
// the number of events deleted.
func (s *Store) Prune(ctx context.Context, now time.Time, maxAge time.Duration, maxEvents int) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("pruning %s: %w", s.path, err)
	}
	defer tx.Rollback()
	var n int64
	if maxAge > 0 {
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE time < ?`, now.Add(-maxAge).UnixNano())
		if err != nil {
			return 0, fmt.Errorf("pruning events by age: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if maxEvents > 0 {
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY time DESC, id DESC LIMIT -1 OFFSET ?)`, maxEvents)
		if err != nil {
			return 0, fmt.Errorf("pruning events by count: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE state != 'pending' AND event_id NOT IN (SELECT id FROM events)`); err != nil {
		return 0, fmt.Errorf("pruning outbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("pruning %s: %w", s.path, err)
	}
	return n, nil
}
