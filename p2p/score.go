package p2p

import (
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
//     wrong group, floods over the rate limit, MLS rejections) mark the
//     forwarder.
//   - P5 application score: +5 for configured relays, so their peer exchange
//     is accepted from the first minute (AcceptPXThreshold).
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

func peerScoreParams(relays map[peer.ID]bool) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: scoreTopicCap,
		AppSpecificScore: func(p peer.ID) float64 {
			if relays[p] {
				return 5
			}
			return 0
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
