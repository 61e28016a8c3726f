package ordering

// standing is this member's standing in the group beyond the roster at its
// tip (which says whether it is a member there). It replaces five flags
// that could combine in any way (lostWelcome, detached, confirmedOut,
// rejoined and the validity of the last lost fork): the combinations that
// can occur are the five states below, and it changes only through the
// named transitions of next (Machine.standing is written nowhere else).
type standing uint8

const (
	// standingIn: on its own branch, a member or removed at its tip.
	standingIn standing = iota
	// standingOut: removed at its tip, and a member's claim showed that
	// the group went on past the removal: nothing to catch up with or
	// announce until a switch or a Welcome brings it back.
	standingOut
	// standingLost: a trusted claim showed its branch lost a fork, or its
	// rejoin was refused while it only lagged: it may take a Welcome into
	// the winning branch (WelcomeAcceptable) and what it did on its branch
	// is judged again when it rejoins (Rejoined).
	standingLost
	// standingOutLost: both of the above: confirmed out, and its branch
	// lost a fork (or it only lagged and its rejoin was refused).
	standingOutLost
	// standingDetached: it lost a fork and its rejoin was refused: it is
	// out of the group until a Welcome (IsMember is false whatever its
	// tip's roster says), and has nothing to catch up with or announce.
	standingDetached
)

func (s standing) String() string {
	switch s {
	case standingIn:
		return "in"
	case standingOut:
		return "out"
	case standingLost:
		return "lost"
	case standingOutLost:
		return "out+lost"
	case standingDetached:
		return "detached"
	}
	return "?"
}

// transition is an event that changes a member's standing.
type transition uint8

const (
	// confirmOut: a member's claim agrees with our branch and goes past
	// our removal.
	confirmOut transition = iota
	// loseFork: a trusted claim showed that our branch lost a fork.
	loseFork
	// refusedLagging: the engine could not rejoin (RejoinRefused) a member
	// that only lagged: it is not known to be out.
	refusedLagging
	// refused: the engine could not rejoin after a lost fork.
	refused
	// rejoin: the engine rejoined (external commit or Welcome).
	rejoin
	// withdraw: the claims that showed a lost fork turned out to be
	// removed members' for a Commit the bar refused (withdrawLoss), before
	// any rejoin was refused: the loss is undone.
	withdraw
)

// next returns the standing after t. Every transition is defined from
// every standing; Detached, which says the most, only a rejoin leaves.
func (s standing) next(t transition) standing {
	switch t {
	case confirmOut:
		switch s {
		case standingIn:
			return standingOut
		case standingLost:
			return standingOutLost
		}
	case loseFork, refusedLagging:
		switch s {
		case standingIn:
			return standingLost
		case standingOut:
			return standingOutLost
		}
	case refused:
		return standingDetached
	case rejoin:
		return standingIn
	case withdraw:
		switch s {
		case standingLost:
			return standingIn
		case standingOutLost:
			return standingOut
		}
	}
	return s
}

// mayWelcome reports that the member lost its branch (a fork, or a refused
// rejoin) and waits for a way into the winning one.
func (s standing) mayWelcome() bool {
	return s == standingLost || s == standingOutLost || s == standingDetached
}

// quiet reports that the member, if out at its tip, has nothing to catch
// up with or announce: the group went on without it, or it is detached.
func (s standing) quiet() bool {
	return s == standingOut || s == standingOutLost || s == standingDetached
}

// opt is an optional value.
type opt[T any] struct {
	v  T
	ok bool
}

func some[T any](v T) opt[T] { return opt[T]{v: v, ok: true} }

func (o opt[T]) get() (T, bool) { return o.v, o.ok }
