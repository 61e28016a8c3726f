package p2p

import (
	"math"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossipsub peer scoring (gossipsub v1.1). The parameters suit chat topics:
// low, bursty traffic, long idle periods, members often behind one NAT, and
// frames whose validity p2p can only partly check (MLS checks run in the
// engine's validator). Decay runs every second; a counter "decays over D"
// means it falls to 1% of its value after D.
//
// What counts:
//   - P1 time in mesh: +0.02 per 10 s, capped at one hour (+7.2). Rewards
//     stable neighbours a little; never enough on its own to outweigh an
//     invalid frame.
//   - P2 first deliveries: +0.5 per frame first delivered by the peer,
//     capped at 20 (+10), decaying over an hour. Rewards useful forwarders.
//   - P3/P3b mesh delivery deficits: OFF. They expect a steady message rate;
//     a quiet group would prune its honest mesh during every lull.
//   - P4 invalid frames: -20 × count², decaying over an hour. One is
//     forgiven (-20), three push a peer below the gossip threshold (-180),
//     four below publish (-320), five onto the graylist (-500). Honest
//     neighbours validate before forwarding, so invalid frames (garbage,
//     wrong group, MLS rejections) mark the forwarder. Frames over the
//     per-neighbour rate limit are ignored, not counted: an honest
//     forwarder relays the valid frames of everyone behind it.
//   - P5 application score: +5 for configured relays, so their peer exchange
//     is accepted from the first minute (AcceptPXThreshold); and -20 ×
//     count², decaying over an hour, for invalid frames the peer sent
//     directly (/canopy/inbox/1), so that a peer cannot escape P4 by
//     injecting outside gossip.
//   - P6 IP colocation: OFF. Families and offices put many members behind
//     one address; MLS membership, not IP diversity, decides who belongs.
//   - P7 behaviour penalty (broken IWANT promises, GRAFT during backoff):
//     -10 × (count-5)², decaying over 10 minutes: tolerates a few protocol
//     races, punishes systematic misbehaviour.
//
// Thresholds: gossip -100, publish -200, graylist -400 (each a multiple of
// the P4 step above), accept PX from 5 (relays, or peers with a long useful
// history), opportunistic graft at 2.

const scoreTopicCap = 20

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -100,
		PublishThreshold:            -200,
		GraylistThreshold:           -400,
		AcceptPXThreshold:           5,
		OpportunisticGraftThreshold: 2,
	}
}

func peerScoreParams(relays map[peer.ID]bool, scores *peerScores) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: scoreTopicCap,
		AppSpecificScore: func(p peer.ID) float64 {
			s := scores.directPenalty(p)
			if relays[p] {
				s += 5
			}
			return s
		},
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 5,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		// Keep a disconnected peer's (negative) score for an hour so that
		// reconnecting does not wash it.
		RetainScore: time.Hour,
	}
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,

		TimeInMeshWeight:  0.02,
		TimeInMeshQuantum: 10 * time.Second,
		TimeInMeshCap:     360,

		FirstMessageDeliveriesWeight: 0.5,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:    20,

		// P3 and P3b disabled, see above. Their decay parameters must
		// still be valid numbers for the atomic parameter validation.
		MeshMessageDeliveriesWeight: 0,
		MeshFailurePenaltyWeight:    0,

		InvalidMessageDeliveriesWeight: -20,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// Standing of neighbours outside gossip.
const (
	// scoreInspectInterval is how often gossipsub's scores are copied for
	// the stream protocols' admission checks.
	scoreInspectInterval = time.Second
	// directInvalidWeight and directInvalidDecay score invalid frames
	// received directly as P4 scores invalid gossip.
	directInvalidWeight = -20
	directInvalidDecay  = time.Hour
	// maxStrikes bounds the table of penalised peers; beyond it, entries
	// that have decayed away are swept.
	maxStrikes = 4096
)

// peerScores is what p2p knows of its neighbours' standing: gossipsub's
// scores (copied every scoreInspectInterval) and the penalties for invalid
// frames that arrived over streams, which gossipsub sees as part of the
// application-specific score. It is safe for concurrent use.
type peerScores struct {
	now func() time.Time

	mu      sync.Mutex
	gossip  map[peer.ID]float64
	strikes map[peer.ID]*strike
}

type strike struct {
	count float64
	at    time.Time
}

func newPeerScores() *peerScores {
	return &peerScores{now: time.Now, gossip: map[peer.ID]float64{}, strikes: map[peer.ID]*strike{}}
}

// inspect is gossipsub's score inspector.
func (s *peerScores) inspect(scores map[peer.ID]float64) {
	s.mu.Lock()
	s.gossip = scores
	s.mu.Unlock()
}

// decayed returns the strike count of st at now.
func (st *strike) decayed(now time.Time) float64 {
	dt := now.Sub(st.at).Seconds()
	if dt <= 0 {
		return st.count
	}
	// Falls to 1% over directInvalidDecay, as gossipsub's decays do.
	return st.count * math.Pow(0.01, dt/directInvalidDecay.Seconds())
}

// strike records an invalid frame p sent directly.
func (s *peerScores) strike(p peer.ID) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.strikes[p]
	if st == nil {
		if len(s.strikes) >= maxStrikes {
			for q, o := range s.strikes {
				if o.decayed(now) < 0.1 {
					delete(s.strikes, q)
				}
			}
		}
		st = &strike{}
		s.strikes[p] = st
	}
	st.count = st.decayed(now) + 1
	st.at = now
}

// directPenalty is the (negative) score of p's invalid direct frames.
func (s *peerScores) directPenalty(p peer.ID) float64 {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.strikes[p]
	if st == nil {
		return 0
	}
	c := st.decayed(now)
	return directInvalidWeight * c * c
}

// standing returns the lower of p's last gossipsub score and its direct
// penalty (which gossipsub only sees at its next refresh).
func (s *peerScores) standing(p peer.ID) float64 {
	pen := s.directPenalty(p)
	s.mu.Lock()
	g := s.gossip[p]
	s.mu.Unlock()
	return min(g, pen)
}

// admitted reports whether p may hand us frames outside gossip: not below
// the gossip threshold, below which gossipsub itself stops exchanging
// gossip with it.
func (s *peerScores) admitted(p peer.ID) bool {
	return s.standing(p) >= peerScoreThresholds().GossipThreshold
}
