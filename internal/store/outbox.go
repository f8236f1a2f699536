package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// OutboxRow is one alert owed to one channel.
type OutboxRow struct {
	ID          int64
	AlertID     string
	EventID     int64
	Channel     string
	Payload     []byte
	Created     time.Time
	Attempts    int
	NextAttempt time.Time
	LastError   string
	State       string
}

// ChannelHead summarises a channel's pending alerts, so the dispatcher can
// decide when to send without reading them all.
type ChannelHead struct {
	Pending int
	// OldestFresh is the creation time of the oldest alert never tried;
	// zero when there is none.
	OldestFresh time.Time
	// NextRetry is the earliest next attempt of an alert already tried
	// once; zero when there is none.
	NextRetry time.Time
}

// Heads returns the pending summary of every channel with pending alerts.
func (s *Store) Heads(ctx context.Context) (map[string]ChannelHead, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT channel, COUNT(*),
		MIN(CASE WHEN attempts = 0 THEN created END),
		MIN(CASE WHEN attempts > 0 THEN next_attempt END)
		FROM outbox WHERE state = 'pending' GROUP BY channel`)
	if err != nil {
		return nil, fmt.Errorf("reading outbox in %s: %w", s.path, err)
	}
	defer rows.Close()
	out := map[string]ChannelHead{}
	for rows.Next() {
		var ch string
		var h ChannelHead
		var fresh, retry sql.NullInt64
		if err := rows.Scan(&ch, &h.Pending, &fresh, &retry); err != nil {
			return nil, fmt.Errorf("reading outbox in %s: %w", s.path, err)
		}
		if fresh.Valid {
			h.OldestFresh = time.Unix(0, fresh.Int64)
		}
		if retry.Valid {
			h.NextRetry = time.Unix(0, retry.Int64)
		}
		out[ch] = h
	}
	return out, rows.Err()
}

const outboxCols = `id, alert_id, event_id, channel, payload, created, attempts, next_attempt, last_error, state`

func scanOutbox(rows *sql.Rows) ([]OutboxRow, error) {
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		var payload string
		var created, next int64
		if err := rows.Scan(&r.ID, &r.AlertID, &r.EventID, &r.Channel, &payload, &created, &r.Attempts, &next, &r.LastError, &r.State); err != nil {
			return nil, err
		}
		r.Payload = []byte(payload)
		r.Created = time.Unix(0, created)
		r.NextAttempt = time.Unix(0, next)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Pending returns up to limit pending alerts of a channel, oldest first.
func (s *Store) Pending(ctx context.Context, channel string, limit int) ([]OutboxRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE state = 'pending' AND channel = ? ORDER BY id LIMIT ?`, channel, limit)
	if err != nil {
		return nil, fmt.Errorf("reading outbox of %s: %w", channel, err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("reading outbox of %s: %w", channel, err)
	}
	return out, nil
}

// Outbox returns every outbox row, oldest first (for inspection and tests).
func (s *Store) Outbox(ctx context.Context) ([]OutboxRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("reading outbox in %s: %w", s.path, err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("reading outbox in %s: %w", s.path, err)
	}
	return out, nil
}

// PendingCount returns the number of undelivered alerts.
func (s *Store) PendingCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting outbox in %s: %w", s.path, err)
	}
	return n, nil
}

func idList(ids []int64) (string, []any) {
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = "?"
		args[i] = id
	}
	return strings.Join(ph, ","), args
}

func (s *Store) update(ctx context.Context, op, set string, pre []any, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ph, args := idList(ids)
	_, err := s.db.ExecContext(ctx, `UPDATE outbox SET `+set+` WHERE state = 'pending' AND id IN (`+ph+`)`, append(pre, args...)...)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", op, s.path, err)
	}
	return nil
}

// MarkDelivered records that the alerts were sent.
func (s *Store) MarkDelivered(ctx context.Context, ids []int64, now time.Time) error {
	return s.update(ctx, "marking alerts delivered", `state = 'delivered', attempts = attempts + 1, last_error = '', done = ?`, []any{now.UnixNano()}, ids)
}

// MarkRetry records a transient failure; the alerts stay pending until next.
func (s *Store) MarkRetry(ctx context.Context, ids []int64, msg string, next time.Time) error {
	return s.update(ctx, "scheduling alert retry", `attempts = attempts + 1, last_error = ?, next_attempt = ?`, []any{msg, next.UnixNano()}, ids)
}

// MarkFailed records a permanent failure: the alerts will not be retried.
func (s *Store) MarkFailed(ctx context.Context, ids []int64, msg string, now time.Time) error {
	return s.update(ctx, "marking alerts failed", `state = 'failed', attempts = attempts + 1, last_error = ?, done = ?`, []any{msg, now.UnixNano()}, ids)
}

// FailOrphans marks failed the pending alerts of channels not in keep (a
// channel removed from the config), and returns how many.
func (s *Store) FailOrphans(ctx context.Context, keep []string, now time.Time) (int64, error) {
	q := `UPDATE outbox SET state = 'failed', last_error = 'channel no longer configured', done = ? WHERE state = 'pending'`
	args := []any{now.UnixNano()}
	if len(keep) > 0 {
		ph := make([]string, len(keep))
		for i, k := range keep {
			ph[i] = "?"
			args = append(args, k)
		}
		q += ` AND channel NOT IN (` + strings.Join(ph, ",") + `)`
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("failing orphaned alerts in %s: %w", s.path, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
