package ordering

import "container/heap"

// The simulator's network: deliveries with delays, duplicates and drops,
// partitions, and the sync protocol behind CatchUp.

type delivery struct {
	at   int
	seq  int
	to   string
	from string
	kind int // 0 group message, 1 welcome, 2 claim
	data []byte
	cl   *Claim
	hist []Entry
}

// logged is a published group message and its publisher: the sync
// protocol (catch-up) serves it from the publisher's side of a partition,
// so it crosses a partition only when it heals.
type logged struct {
	from string
	msg  []byte
}

type dq []*delivery

func (q dq) Len() int { return len(q) }
func (q dq) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q dq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *dq) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *dq) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

func (s *sim[S]) connected(a, b string) bool { return s.side[a] == s.side[b] }

func (s *sim[S]) send(d *delivery) {
	s.seq++
	d.seq = s.seq
	if !s.connected(d.from, d.to) {
		s.held = append(s.held, d)
		return
	}
	d.at = s.round + 1 + s.rng.IntN(s.p.maxDelay)
	if s.rng.Float64() < s.p.pDrop {
		d.at += s.p.maxDelay + 1 + s.rng.IntN(2*s.p.maxDelay) // retransmitted later
	}
	heap.Push(&s.q, d)
	if s.rng.Float64() < s.p.pDup {
		c := *d
		s.seq++
		c.seq = s.seq
		c.at = s.round + 1 + s.rng.IntN(2*s.p.maxDelay)
		heap.Push(&s.q, &c)
	}
}

// sync delivers the logged group messages of epoch from on to a peer as
// the sync protocol does: one response, in the order they were published
// (a lost response is retried by the next CatchUp). Messages from the
// other side of a partition wait until it heals.
func (s *sim[S]) sync(to string, from uint64) {
	at := s.round + 1 + s.rng.IntN(s.p.maxDelay)
	for _, l := range s.log {
		if e, _ := s.be.header(l.msg); e >= from {
			s.seq++
			d := &delivery{to: to, from: l.from, kind: 0, data: l.msg, seq: s.seq, at: at}
			if !s.connected(d.from, d.to) {
				s.held = append(s.held, d)
				continue
			}
			heap.Push(&s.q, d)
		}
	}
}

// publish sends a group message to every other peer (gossip) and logs it
// for catch-up.
func (s *sim[S]) publish(from string, msg []byte) {
	s.log = append(s.log, logged{from, msg})
	s.published++
	for _, p := range s.sorted() {
		if p.id != from {
			s.send(&delivery{to: p.id, from: from, kind: 0, data: msg})
		}
	}
}

func (s *sim[S]) heal() {
	s.side = map[string]int{}
	held := s.held
	s.held = nil
	for _, d := range held {
		s.send(d)
	}
}

func (s *sim[S]) partition() {
	ids := s.sorted()
	s.side = map[string]int{}
	k := 2 + s.rng.IntN(2)
	for _, p := range ids {
		s.side[p.id] = s.rng.IntN(k)
	}
	for _, id := range s.ids {
		if _, ok := s.side[id]; !ok {
			s.side[id] = s.rng.IntN(k)
		}
	}
}
