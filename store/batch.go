package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Batched writes. A member under load receives messages faster than one
// transaction (with its fsync) per frame allows: the engine writes the
// frames it drained from the network with the messages they decrypted and
// the next state in one CommitEpoch (EpochTransition.Frames), and asks
// LoggedFrames beforehand which of them an earlier run logged already.

// AppendResult is the outcome of one frame of AppendFrames: the frame's
// Seq and whether it was new, or Err when this frame alone was refused
// (ErrInvalid, ErrQuotaExceeded); the other frames are stored regardless.
type AppendResult struct {
	Seq      int64
	Inserted bool
	Err      error
}

// MaxAppendBatch bounds the frames of one AppendFrames call (what one
// transaction holds the writer for).
const MaxAppendBatch = 1024

// AppendFrames stores frames in one transaction within q, each as
// AppendFrame would, in order: a frame repeated within the batch is stored once and
// later copies report inserted=false with the first one's Seq. A frame
// that AppendFrame would refuse gets its error in its result; an error of
// the database itself fails the whole batch (nothing is stored) and is
// returned. More than MaxAppendBatch frames give ErrInvalid.
func (db *DB) AppendFrames(ctx context.Context, frames []Frame, q FrameQuota) ([]AppendResult, error) {
	res, valid, err := checkFrames(frames, q)
	if err != nil || !valid {
		return res, err
	}
	db.prepareFrameLog(ctx)
	err = db.write(ctx, "append frames", func(tx *sql.Tx) error {
		return db.appendFramesTx(statementContext(ctx), db.cached(tx), frames, q, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// checkFrames checks a batch of frames before any write: its results
// hold the frames refused on their own, and valid says whether any frame
// is left to store. A batch over MaxAppendBatch is an error.
func checkFrames(frames []Frame, q FrameQuota) (res []AppendResult, valid bool, err error) {
	if len(frames) > MaxAppendBatch {
		return nil, false, fmt.Errorf("%w: %d frames in one batch (at most %d)", ErrInvalid, len(frames), MaxAppendBatch)
	}
	if len(frames) == 0 {
		return nil, false, nil
	}
	res = make([]AppendResult, len(frames))
	for i, f := range frames {
		if res[i].Err = checkFrame(f, q); res[i].Err == nil {
			valid = true
		}
	}
	return res, valid, nil
}

// appendFramesTx stores the checked frames (those without an error in
// res) inside a transaction and fills in their results (AppendFrames,
// CommitEpoch). Only an error of the database is returned.
func (db *DB) appendFramesTx(ctx context.Context, cq *cachedTx, frames []Frame, q FrameQuota, res []AppendResult) error {
	for i, f := range frames {
		if res[i].Err != nil {
			continue
		}
		seq, inserted, err := db.appendFrameTx(ctx, cq, f, q)
		switch {
		case errors.Is(err, ErrQuotaExceeded):
			// Refused before anything of it was written.
			res[i].Err = err
		case err != nil:
			return err
		default:
			res[i].Seq, res[i].Inserted = seq, inserted
		}
	}
	return nil
}

// LoggedFrames reports, for each of a topic's frames (their data), the
// Seq under which the frame log holds it, or 0 when it does not. It only
// reads: a receiver asks it before processing a batch whose frames it then
// writes with the resulting state (EpochTransition.Frames). More than
// MaxAppendBatch frames give ErrInvalid.
func (db *DB) LoggedFrames(ctx context.Context, topic string, data [][]byte) ([]int64, error) {
	if len(data) > MaxAppendBatch {
		return nil, fmt.Errorf("%w: %d frames in one lookup (at most %d)", ErrInvalid, len(data), MaxAppendBatch)
	}
	seqs := make([]int64, len(data))
	if len(data) == 0 {
		return seqs, nil
	}
	q, err := db.read()
	if err != nil {
		return nil, err
	}
	at := make(map[string][]int, len(data)) // a hash's indexes in data
	args := make([]any, 1, len(data)+1)
	args[0] = topic
	for i, d := range data {
		h := sha256.Sum256(d)
		k := string(h[:])
		if at[k] == nil {
			args = append(args, h[:])
		}
		at[k] = append(at[k], i)
	}
	query := `SELECT hash, seq FROM relay_frames WHERE topic = ? AND hash IN (?` +
		strings.Repeat(`, ?`, len(args)-2) + `)`
	// One short indexed read per received batch: not worth the driver's
	// cancellation goroutine (statementContext).
	rows, err := q.QueryContext(statementContext(ctx), query, args...)
	if err != nil {
		return nil, db.fail("logged frames", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hash []byte
		var seq int64
		if err := rows.Scan(&hash, &seq); err != nil {
			return nil, db.fail("logged frames", err)
		}
		for _, i := range at[string(hash)] {
			seqs[i] = seq
		}
	}
	return seqs, db.fail("logged frames", rows.Err())
}
