package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Batched writes. A member under load receives messages faster than one
// transaction (with its fsync) per frame allows: the engine logs the frames
// it drained from the network in one AppendFrames call and writes the
// messages they decrypted with the next state in one CommitEpoch.

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
	if len(frames) > MaxAppendBatch {
		return nil, fmt.Errorf("%w: %d frames in one batch (at most %d)", ErrInvalid, len(frames), MaxAppendBatch)
	}
	res := make([]AppendResult, len(frames))
	valid := false
	for i, f := range frames {
		if res[i].Err = checkFrame(f, q); res[i].Err == nil {
			valid = true
		}
	}
	if !valid {
		return res, nil
	}
	db.prepareFrameLog(ctx)
	err := db.write(ctx, "append frames", func(tx *sql.Tx) error {
		cq := db.cached(tx)
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
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
