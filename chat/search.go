package chat

import (
	"context"
	"errors"

	"github.com/canopy-chat/canopy/store"
)

// SearchHit is one search result, for front ends that list results apart
// from the timeline (the /search command prints them as text instead).
type SearchHit struct {
	Message   Message // Group and ID locate it in History
	GroupName string
}

// maxSearchHits bounds one Search.
const maxSearchHits = 200

// Search finds the messages of a group (of every group when group is
// empty) that contain every word of text, newest first: the same search as
// /search (store.DB.Search: words match anywhere, also inside words).
func (e *Engine) Search(ctx context.Context, group GroupID, text string, limit int) ([]SearchHit, error) {
	if limit <= 0 || limit > maxSearchHits {
		limit = maxSearchHits
	}
	q := store.SearchQuery{Text: text, Limit: limit}
	if group != "" {
		g := e.group(group)
		if g == nil {
			return nil, errors.New("no group " + string(group))
		}
		q.GroupID = g.id
	}
	rows, err := e.db.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	hits := make([]SearchHit, 0, len(rows))
	for _, r := range rows {
		g := e.groupByRaw(r.GroupID)
		if g == nil {
			continue // a group being removed
		}
		hits = append(hits, SearchHit{Message: e.messageFromRow(g, r.Message), GroupName: g.view.snapshot().Name})
	}
	return hits, nil
}
