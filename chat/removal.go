package chat

// removedBy is GroupView.RemovedBy: who removed this profile from the
// group, when it is no longer a member without having asked to leave. A
// profile closed without a recorded remover (a lost branch, or state
// written before the remover was kept) says "someone".
func (g *group) removedBy() string {
	if !g.closed || g.meta.Leaving {
		return ""
	}
	if g.meta.RemovedBy != "" {
		return g.meta.RemovedBy
	}
	return "someone"
}

// noteRemovedBy records who committed this profile's removal (persisted
// with the group's meta on the next write) and shows it in the group's view
// at once: the view was refreshed when the tip moved, before the Commit
// was described.
func (g *group) noteRemovedBy(name string) {
	g.meta.RemovedBy = name
	g.view.mu.Lock()
	g.view.snap.RemovedBy = g.removedBy()
	g.view.mu.Unlock()
}
