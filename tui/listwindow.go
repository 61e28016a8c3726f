package tui

// listWindow is the scroll position of a list pane (the group list, the
// member panel, the search results): the first line of the list shown.
// Embedded, its offset is the pane's. The help overlay, whose text does not
// have a selection, scrolls in a bubbles viewport instead.
type listWindow struct{ offset int }

// scrollBy moves the window by delta lines (the mouse wheel) without
// leaving a list of n lines shown rows at a time.
func (w *listWindow) scrollBy(delta, rows, n int) {
	w.offset = max(0, min(w.offset+delta, n-rows))
}

// reveal scrolls as little as needed for lines top..sel to be in a window
// of rows lines (top above sel: a heading that belongs with it).
func (w *listWindow) reveal(top, sel, rows int) {
	if top < w.offset {
		w.offset = top
	}
	if sel >= w.offset+rows {
		w.offset = sel - rows + 1
	}
}

// clamp keeps the window within a list of n lines shown rows at a time.
func (w *listWindow) clamp(rows, n int) { w.offset = max(0, min(w.offset, n-rows)) }
