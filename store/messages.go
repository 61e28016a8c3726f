package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const messageColumns = `seq, group_id, msg_id, sender, epoch, kind, text, payload, reply_to, sent_at, received_at, state`

func scanMessage(sc interface{ Scan(...any) error }, extra ...any) (Message, error) {
	var m Message
	var sent, received int64
	dest := append([]any{&m.Seq, &m.GroupID, &m.ID, &m.Sender, &m.Epoch, &m.Kind, &m.Text, &m.Payload, &m.ReplyTo, &sent, &received, &m.State}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return Message{}, err
	}
	m.SentAt, m.ReceivedAt = fromTS(sent), fromTS(received)
	return m, nil
}

// prepareMessages validates messages for groupID (nil: each message names
// its own group) and fills defaults.
func (db *DB) prepareMessages(groupID []byte, msgs []Message, at time.Time) ([]Message, error) {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		if len(m.GroupID) == 0 {
			m.GroupID = groupID
		} else if groupID != nil && string(m.GroupID) != string(groupID) {
			return nil, fmt.Errorf("%w: message %x belongs to group %x, not to the transition's group %x", ErrInvalid, m.ID, m.GroupID, groupID)
		}
		if err := needID("group id", m.GroupID); err != nil {
			return nil, err
		}
		if err := needID("message id", m.ID); err != nil {
			return nil, err
		}
		if err := checkEpoch(m.Epoch); err != nil {
			return nil, err
		}
		if m.State > Failed {
			return nil, fmt.Errorf("%w: delivery state %d", ErrInvalid, m.State)
		}
		if !utf8.ValidString(m.Text) {
			m.Text = strings.ToValidUTF8(m.Text, "\uFFFD")
		}
		if m.ReceivedAt.IsZero() {
			m.ReceivedAt = at
		}
		out[i] = m
	}
	return out, nil
}

// insertMessages inserts msgs, skipping (group, id) pairs already stored,
// and returns how many were new. The groups must exist.
func insertMessages(ctx context.Context, cq *cachedTx, msgs []Message) (int, error) {
	n, _, err := insertMessagesFlags(ctx, cq, msgs)
	return n, err
}

// insertMessagesFlags is insertMessages that also reports, per message,
// whether it was new.
func insertMessagesFlags(ctx context.Context, cq *cachedTx, msgs []Message) (int, []bool, error) {
	if len(msgs) == 0 {
		return 0, nil, nil
	}
	checked := map[string]bool{}
	for _, m := range msgs {
		if checked[string(m.GroupID)] {
			continue
		}
		var n int
		if err := cq.QueryRowContext(ctx, sqlGroupExists, m.GroupID).Scan(&n); err != nil {
			return 0, nil, err
		}
		if n == 0 {
			return 0, nil, fmt.Errorf("%w: group %x does not exist", ErrNotFound, m.GroupID)
		}
		checked[string(m.GroupID)] = true
	}
	stmt, err := cq.Stmt(ctx, sqlInsertMessage)
	if err != nil {
		return 0, nil, err
	}
	defer stmt.Close()
	inserted := 0
	flags := make([]bool, len(msgs))
	for i, m := range msgs {
		res, err := stmt.ExecContext(ctx, m.GroupID, m.ID, nz(m.Sender), int64(m.Epoch), m.Kind, m.Text, m.Payload, m.ReplyTo,
			ts(m.SentAt), ts(m.ReceivedAt), m.State)
		if err != nil {
			return 0, nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			inserted++
			flags[i] = true
		}
	}
	if inserted > 0 {
		if err := indexIfDueTx(ctx, cq); err != nil {
			return 0, nil, err
		}
	}
	return inserted, flags, nil
}

// AddMessages stores messages that change no group state; duplicates are
// ignored. It returns how many were new.
func (db *DB) AddMessages(ctx context.Context, msgs ...Message) (int, error) {
	prepared, err := db.prepareMessages(nil, msgs, db.now())
	if err != nil {
		return 0, err
	}
	var n int
	err = db.write(ctx, "add messages", func(tx *sql.Tx) error {
		n, err = insertMessages(ctx, db.cached(tx), prepared)
		return err
	})
	return n, err
}

// Message returns one message, or ErrNotFound.
func (db *DB) Message(ctx context.Context, groupID, id []byte) (Message, error) {
	q, err := db.read()
	if err != nil {
		return Message{}, err
	}
	m, err := scanMessage(q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE group_id = ? AND msg_id = ?`, nz(groupID), nz(id)))
	if err != nil {
		return Message{}, db.fail("message", err)
	}
	return m, nil
}

// Messages pages through a group's history, newest first.
func (db *DB) Messages(ctx context.Context, groupID []byte, mq MessageQuery) ([]Message, error) {
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	before := mq.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := q.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE group_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
		nz(groupID), before, limitOr(mq.Limit, 100, 10000))
	if err != nil {
		return nil, db.fail("messages", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, db.fail("messages", err)
		}
		out = append(out, m)
	}
	return out, db.fail("messages", rows.Err())
}

func (db *DB) updateMessage(ctx context.Context, op, set string, groupID, id []byte, args ...any) error {
	return db.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET `+set+` WHERE group_id = ? AND msg_id = ?`, append(args, nz(groupID), nz(id))...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// EditMessage replaces a message's text and payload (the search index follows).
func (db *DB) EditMessage(ctx context.Context, groupID, id []byte, text string, payload []byte) error {
	return db.updateMessage(ctx, "edit message", `text = ?, payload = ?`, groupID, id, strings.ToValidUTF8(text, "\uFFFD"), payload)
}

// SetDeliveryState sets a message's delivery state.
func (db *DB) SetDeliveryState(ctx context.Context, groupID, id []byte, s DeliveryState) error {
	if s > Failed {
		return fmt.Errorf("%w: delivery state %d", ErrInvalid, s)
	}
	return db.updateMessage(ctx, "set delivery state", `state = ?`, groupID, id, s)
}

// DeleteMessage deletes one message (no error if absent).
func (db *DB) DeleteMessage(ctx context.Context, groupID, id []byte) error {
	return db.write(ctx, "delete message", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE group_id = ? AND msg_id = ?`, nz(groupID), nz(id))
		return err
	})
}

// DeleteMessagesBefore deletes a group's messages received before t.
func (db *DB) DeleteMessagesBefore(ctx context.Context, groupID []byte, t time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, "delete messages", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE group_id = ? AND received_at < ?`, nz(groupID), ts(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// ApplyRetention deletes expired messages in every group with a Retention.
func (db *DB) ApplyRetention(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := db.write(ctx, "apply retention", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, retention FROM groups WHERE retention > 0`)
		if err != nil {
			return err
		}
		type gr struct {
			id  []byte
			ret int64
		}
		var groups []gr
		for rows.Next() {
			var g gr
			if err := rows.Scan(&g.id, &g.ret); err != nil {
				rows.Close()
				return err
			}
			groups = append(groups, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, g := range groups {
			res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE group_id = ? AND received_at < ?`, g.id, ts(now)-g.ret)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return nil
	})
	return total, err
}

// Search finds messages containing every word of q.Text, newest first.
// Words match anywhere in a message, also inside words ("ali" finds
// "alice", 本語 finds 日本語).
func (db *DB) Search(ctx context.Context, sq SearchQuery) ([]SearchResult, error) {
	plan, err := ftsQuery(sq.Text)
	if err != nil {
		return nil, err
	}
	if plan.match != "" {
		// Messages newer than the last batch are indexed now, so that
		// search always sees everything stored.
		if err := db.flushSearchIndex(ctx); err != nil {
			return nil, err
		}
	}
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	before := sq.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	var query string
	var args []any
	if plan.match != "" {
		query = `SELECT ` + prefixed("m.", messageColumns) + `, snippet(messages_fts, 0, ?, ?, '…', 48)
		FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
		WHERE messages_fts MATCH ? AND messages_fts.rowid < ?`
		args = []any{SnippetStart, SnippetEnd, plan.match, before}
	} else {
		// only short terms: no index can help; the scan is bounded by LIMIT
		query = `SELECT ` + prefixed("m.", messageColumns) + `, ''
		FROM messages m WHERE m.seq < ?`
		args = []any{before}
	}
	for _, l := range plan.likes {
		query += ` AND m.text LIKE ? ESCAPE '\'`
		args = append(args, l)
	}
	if sq.GroupID != nil {
		query += ` AND m.group_id = ?`
		args = append(args, sq.GroupID)
	}
	// Ordering by the index's rowid (the message's seq) lets FTS5 return
	// the newest matches first and stop at the limit; ordering by m.seq
	// makes SQLite collect and sort every match.
	if plan.match != "" {
		query += ` ORDER BY messages_fts.rowid DESC LIMIT ?`
	} else {
		query += ` ORDER BY m.seq DESC LIMIT ?`
	}
	args = append(args, limitOr(sq.Limit, 50, 1000))
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, db.fail("search", err)
	}
	defer rows.Close()
	var out []SearchResult
	for rows.Next() {
		var r SearchResult
		m, err := scanMessage(rows, &r.Snippet)
		if err != nil {
			return nil, db.fail("search", err)
		}
		r.Message = m
		if plan.match == "" {
			r.Snippet = markFirst(m.Text, plan.short)
		}
		out = append(out, r)
	}
	return out, db.fail("search", rows.Err())
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

const (
	maxSearchLen   = 1000
	maxSearchTerms = 32
)

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || unicode.Is(unicode.Co, r)
}

// searchPlan is a search text made safe: an FTS5 MATCH expression for the
// terms of three characters or more (the trigram index finds them as
// substrings) and LIKE patterns for shorter ones.
type searchPlan struct {
	match string   // quoted terms joined by AND; "" when every term is short
	likes []string // %term% patterns, LIKE metacharacters escaped
	short []string // the short terms themselves (for the snippet)
}

// minTrigramTerm is the shortest term the trigram index can look up.
const minTrigramTerm = 3

// ftsQuery turns what a user typed into a safe search: every word becomes
// a quoted FTS5 string (so no FTS5 operator or column filter can be
// injected) or an escaped LIKE pattern, words are ANDed, and "quoted
// text" is a phrase. Every term matches as a substring, so a prefix
// needs no '*' (a trailing '*' is accepted and ignored).
func ftsQuery(text string) (searchPlan, error) {
	var plan searchPlan
	if len(text) > maxSearchLen {
		return plan, fmt.Errorf("%w: search text longer than %d bytes", ErrInvalid, maxSearchLen)
	}
	var terms []string
	var words []string // words of the current phrase
	var word strings.Builder
	inPhrase := false
	endWord := func() {
		if word.Len() > 0 {
			words = append(words, word.String())
			word.Reset()
		}
	}
	endTerm := func() {
		endWord()
		if len(words) > 0 {
			terms = append(terms, strings.Join(words, " "))
			words = words[:0]
		}
	}
	for _, r := range text {
		switch {
		case isWordRune(r):
			word.WriteRune(r)
		case r == '"':
			endTerm()
			inPhrase = !inPhrase
		case inPhrase:
			endWord()
		default:
			endTerm()
		}
	}
	endTerm()
	if len(terms) == 0 {
		return plan, fmt.Errorf("%w: search text has no words", ErrInvalid)
	}
	if len(terms) > maxSearchTerms {
		return plan, fmt.Errorf("%w: search text has more than %d words", ErrInvalid, maxSearchTerms)
	}
	var match []string
	for _, t := range terms {
		if utf8.RuneCountInString(t) >= minTrigramTerm {
			match = append(match, `"`+t+`"`)
			continue
		}
		plan.short = append(plan.short, t)
		plan.likes = append(plan.likes, "%"+likeEscaper.Replace(t)+"%")
	}
	plan.match = strings.Join(match, " AND ")
	return plan, nil
}

// likeEscaper escapes LIKE's metacharacters (with ESCAPE '\'). Terms hold
// only word runes and spaces, so this is defence in depth.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// markFirst is the snippet of a search hit found by LIKE alone: the text
// around the first term found (ASCII case folded, like LIKE), the term
// between SnippetStart and SnippetEnd.
func markFirst(text string, terms []string) string {
	rs := []rune(text)
	fold := func(r rune) rune {
		if r < utf8.RuneSelf {
			return unicode.ToLower(r)
		}
		return r
	}
	for _, t := range terms {
		tr := []rune(t)
	scan:
		for i := 0; i+len(tr) <= len(rs); i++ {
			for j := range tr {
				if fold(rs[i+j]) != fold(tr[j]) {
					continue scan
				}
			}
			const context = 24
			start, end := max(0, i-context), min(len(rs), i+len(tr)+context)
			var b strings.Builder
			if start > 0 {
				b.WriteString("…")
			}
			b.WriteString(string(rs[start:i]) + SnippetStart + string(rs[i:i+len(tr)]) + SnippetEnd + string(rs[i+len(tr):end]))
			if end < len(rs) {
				b.WriteString("…")
			}
			return b.String()
		}
	}
	return text
}
