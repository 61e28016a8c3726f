package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canopy-chat/canopy/blob"
	"github.com/canopy-chat/canopy/p2p"
)

// Relays keeping files.
//
// Right after /send has sent the announcement, the sender uploads the
// ciphertext (never the key) to each of the profile's relays over
// /canopy/blobput/1, in the background. A relay that takes it serves it
// on /canopy/blob/1 until it expires (the relay's -blob-ttl, 7 days by
// default), so members fetch the file while the sender and every other
// holder are offline; peersFor asks relays last. The relay cannot check the
// ciphertext (the id is derived from the key), so receivers authenticate
// every chunk as from any peer and drop a relay serving bad bytes.
//
// Choices where the issue is silent:
//   - Uploads start once the announcement is sent, not before: sending
//     stays instant, and the id is secret until then (only the group and
//     the peers it asks learn it), so nobody can upload other bytes under
//     it first; a relay never replaces a complete file.
//   - One pass tries every relay once (PutBlob resumes within it). The
//     file's note records that the pass has not run to the end, so a
//     sender who quits mid-upload goes on at the next start (a relay that
//     has the file already answers at once). After a complete pass the
//     file is not offered again, also not to a relay that was
//     unreachable then. A notice says how many relays keep the file, or
//     why none does.

// relayConnectTimeout bounds dialling a relay for an upload.
const relayConnectTimeout = 20 * time.Second

// uploadToRelays gives the ciphertext of an own file to the profile's
// relays in the background, tells the user the outcome in a notice and
// clears t.upload in the file's note once the pass has run to the end.
func (x *transfers) uploadToRelays(t *xfer) {
	node := x.e.node
	if node == nil || len(x.e.relays) == 0 {
		return
	}
	relays := slices.Clone(x.e.relays)
	a, g := t.ann, t.t.Group
	x.e.goBackground(func(ctx context.Context) {
		id := a.ID()
		if !x.store.Has(id) {
			return // removed meanwhile (retention, /delete)
		}
		defer func() {
			if ctx.Err() == nil && x.store.Has(id) {
				x.mu.Lock()
				t.upload = false
				x.mu.Unlock()
				x.saveNote(t)
			}
		}()
		var kept int
		var why []string
		for _, ri := range relays {
			err := x.uploadTo(ctx, node, ri, id)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				x.e.log.Info("relay did not take a file", "relay", ri.ID, "file", id.String()[:12], "err", err)
				why = append(why, relayRefusal(err))
				continue
			}
			kept++
		}
		if kept > 0 {
			x.e.notice(g, NoticeInfo, "%s is kept on %d of %d relays: members can fetch it while you are offline", a.Name, kept, len(relays))
			return
		}
		slices.Sort(why)
		x.e.notice(g, NoticeWarning, "no relay keeps %s (%s): members can fetch it only while someone who has it is online", a.Name, strings.Join(slices.Compact(why), "; "))
	})
}

func (x *transfers) uploadTo(ctx context.Context, node *p2p.Node, ri p2p.AddrInfo, id blob.ID) error {
	if !node.IsConnected(ri.ID) {
		cctx, cancel := context.WithTimeout(ctx, relayConnectTimeout)
		err := node.Connect(cctx, ri)
		cancel()
		if err != nil {
			return fmt.Errorf("unreachable: %w", err)
		}
	}
	r, err := x.store.Open(id)
	if err != nil {
		return err // removed meanwhile (retention, /delete)
	}
	defer r.Close()
	return node.PutBlob(ctx, ri.ID, id, r.Size(), r)
}

// relayRefusal says in a few words why a relay did not take a file.
func relayRefusal(err error) string {
	var pe *p2p.Error
	switch {
	case errors.As(err, &pe) && pe.Op == "remote" && pe.Msg != "":
		return pe.Msg
	case errors.As(err, &pe) && pe.Op == "open":
		return "relay unreachable or keeps no files"
	case strings.HasPrefix(err.Error(), "unreachable"):
		return "relay unreachable"
	}
	return err.Error()
}
