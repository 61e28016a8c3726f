package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ValidationResult is the verdict of a Validator.
type ValidationResult int

const (
	// Accept delivers the frame and forwards it to the mesh.
	Accept ValidationResult = iota
	// Reject drops the frame and penalises the peer that sent it (peer
	// scoring): use it for frames no honest peer would forward.
	Reject
	// Ignore drops the frame without penalty (e.g. not decidable now).
	Ignore
)

func (r ValidationResult) String() string {
	switch r {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// Validator is the MLS-aware part of topic validation, supplied by the chat
// engine. It runs after p2p's own checks (size, MLSMessage header, group id,
// per-peer rate), so hdr is a PublicMessage or PrivateMessage header of the
// topic's group. from is the neighbour that forwarded the frame (StrictNoSign:
// there is no author), or the local node for its own publications.
//
// It Accepts (and so forwards) only frames it authenticated with the keys of
// the frame's epoch; frames it cannot judge yet (future epochs, a branch it
// has no state of) get Ignore, not Reject: an honest neighbour may forward
// them, and the engine holds them in bounded memory until it can judge
// them. Reject is for frames no member could have sent. Competing Commits
// that authenticate are accepted (ordering decides, not validation). It is
// called concurrently from many goroutines and must not block for long.
type Validator func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) ValidationResult

// VerdictValidator is a Validator that also returns what it learnt about an
// accepted frame (say, which epoch state authenticated it); Topic.Next
// hands that back in Message.Verdict, so that the consumer does not repeat
// the work. The verdict of a frame that is not accepted is dropped.
type VerdictValidator func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) (ValidationResult, any)

// verdictless adapts a Validator.
func verdictless(v Validator) VerdictValidator {
	if v == nil {
		return nil
	}
	return func(ctx context.Context, from peer.ID, hdr MLSHeader, data []byte) (ValidationResult, any) {
		return v(ctx, from, hdr, data), nil
	}
}

// topicPrefix is the prefix of every canopy group topic.
const topicPrefix = "/canopy/group/1/"

// TopicName returns the gossipsub topic of a group: the group id itself never
// appears on the wire outside MLS.
func TopicName(groupID []byte) string {
	return topicPrefix + hex.EncodeToString(topicHash(groupID))
}

func topicHash(groupID []byte) []byte {
	h := sha256.New()
	h.Write([]byte("canopy topic"))
	h.Write(groupID)
	return h.Sum(nil)
}

// isTopicName reports whether s has the form TopicName produces.
func isTopicName(s string) bool {
	if len(s) != len(topicPrefix)+64 || s[:len(topicPrefix)] != topicPrefix {
		return false
	}
	for _, c := range s[len(topicPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ErrInvalidFrame is returned by Publish for a frame the topic would reject.
var ErrInvalidFrame = errors.New("p2p: invalid frame for topic")

// frameCheck validates a frame against a topic without any key: size,
// MLSMessage header, wire format and group. It is the part of validation
// relays can do.
type frameCheck struct {
	topic   string
	hash    []byte // topic hash, decoded from the topic name
	maxSize int
}

func newFrameCheck(topic string, maxSize int) (*frameCheck, error) {
	if !isTopicName(topic) {
		return nil, fmt.Errorf("p2p: %q is not a canopy group topic", topic)
	}
	h, _ := hex.DecodeString(topic[len(topicPrefix):])
	return &frameCheck{topic: topic, hash: h, maxSize: maxSize}, nil
}

// check returns the parsed header, or a reason for rejection.
func (c *frameCheck) check(data []byte) (MLSHeader, string, error) {
	if len(data) > c.maxSize {
		return MLSHeader{}, "oversize", fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidFrame, len(data), c.maxSize)
	}
	hdr, err := ParseMLSHeader(data)
	if err != nil {
		return hdr, "malformed", fmt.Errorf("%w: %w", ErrInvalidFrame, err)
	}
	if !hdr.HasEpoch() {
		return hdr, "wire_format", fmt.Errorf("%w: %s does not belong on a group topic", ErrInvalidFrame, hdr.WireFormat)
	}
	if !bytes.Equal(topicHash(hdr.GroupID), c.hash) {
		return hdr, "wrong_group", fmt.Errorf("%w: frame of another group", ErrInvalidFrame)
	}
	return hdr, "", nil
}

// topicValidator is the gossipsub validator of one topic. Limiters are per
// topic so that a busy group cannot starve another.
type topicValidator struct {
	n      *Node
	check  *frameCheck
	frames *peerLimiter
	bytes  *peerLimiter
	user   VerdictValidator
}

func newTopicValidator(n *Node, check *frameCheck, user VerdictValidator) *topicValidator {
	return &topicValidator{
		n:      n,
		check:  check,
		frames: newPeerLimiter(n.cfg.gossipRate),
		bytes:  newPeerLimiter(n.cfg.gossipBytes),
		user:   user,
	}
}

// validate runs the whole pipeline. Frames over the rate limit are ignored,
// never rejected: gossipsub counts a Reject against the neighbour that
// forwarded the frame, and a neighbour forwarding the (valid) frames of
// several peers behind it exceeds our per-neighbour limit without any fault
// of its own; punishing it would let two sybils make us graylist an honest
// member. Reject is kept for frames that are provably invalid.
func (v *topicValidator) validate(ctx context.Context, from peer.ID, data []byte) (MLSHeader, ValidationResult, string) {
	hdr, res, reason, _ := v.validateVerdict(ctx, from, data)
	return hdr, res, reason
}

// validateVerdict is validate with the user validator's verdict.
func (v *topicValidator) validateVerdict(ctx context.Context, from peer.ID, data []byte) (MLSHeader, ValidationResult, string, any) {
	hdr, reason, err := v.check.check(data)
	if err != nil {
		return hdr, Reject, reason, nil
	}
	if from != v.n.h.ID() {
		if !v.frames.allow(from, 1) || !v.bytes.allow(from, float64(len(data))) {
			return hdr, Ignore, "rate", nil
		}
	}
	var verdict any
	if v.user != nil {
		var r ValidationResult
		switch r, verdict = v.user(ctx, from, hdr, data); r {
		case Accept:
		case Reject, Ignore:
			return hdr, r, "validator", nil
		default:
			return hdr, Ignore, "validator", nil
		}
	}
	return hdr, Accept, "", verdict
}

// localMark is the validator data of frames published locally: the node's
// own frames (which Next does not hand back) and frames received directly
// and re-published (which Next attributes to the peer that sent them, with
// the verdict of the validation deliverDirect ran).
type localMark struct {
	own     bool
	from    peer.ID
	hdr     MLSHeader
	verdict any
}

// accepted is the validator data of an accepted gossip frame.
type accepted struct {
	hdr     MLSHeader
	verdict any
}

func (v *topicValidator) pubsubValidator(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	hdr, res, reason, verdict := v.validateVerdict(ctx, from, msg.Data)
	v.n.metrics.gossipResult(res, reason)
	if res != Accept {
		if res == Reject {
			v.n.log.Debug("gossip frame rejected", "topic", v.check.topic, "from", from, "reason", reason)
		}
		return toPubsubResult(res)
	}
	if mark, ok := msg.ValidatorData.(*localMark); ok {
		mark.hdr = hdr
		if mark.verdict == nil {
			mark.verdict = verdict
		}
	} else {
		msg.ValidatorData = accepted{hdr: hdr, verdict: verdict}
	}
	return pubsub.ValidationAccept
}

func toPubsubResult(r ValidationResult) pubsub.ValidationResult {
	switch r {
	case Accept:
		return pubsub.ValidationAccept
	case Reject:
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}
