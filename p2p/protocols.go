package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Stream protocol ids (DESIGN.md §4).
const (
	// ProtocolKeyPackage fetches a KeyPackage of a user from that user or
	// from a relay holding KeyPackages for them.
	ProtocolKeyPackage protocol.ID = "/canopy/keypackage/1"
	// ProtocolInbox delivers a Welcome or any other direct message to a peer.
	ProtocolInbox protocol.ID = "/canopy/inbox/1"
	// ProtocolSync fetches a topic's stored messages since an epoch.
	ProtocolSync protocol.ID = "/canopy/sync/1"
	// ProtocolTree fetches a group's ratchet tree.
	ProtocolTree protocol.ID = "/canopy/tree/1"
	// ProtocolRelay asks a relay to keep a topic, hold mail, hold KeyPackages.
	ProtocolRelay protocol.ID = "/canopy/relay/1"
)

// Size caps that do not depend on configuration.
const (
	// MaxKeyPackageSize caps one KeyPackage. Real ones are a few hundred
	// bytes; X.509 credential chains can reach a few KiB.
	MaxKeyPackageSize = 64 << 10
	// MaxTreeSize caps a ratchet tree served over /canopy/tree/1. A
	// 10,000-member tree with P-521 keys and signatures is about 12 MB.
	MaxTreeSize = 64 << 20
	// treeChunkSize is the size of the frames a tree is streamed in.
	treeChunkSize = 1 << 20
	// maxTopicLen caps topic names in requests.
	maxTopicLen = 256
	// maxPeerIDLen caps encoded peer ids in requests.
	maxPeerIDLen = 128
	// maxStatusMsgLen caps the human-readable text of a status.
	maxStatusMsgLen = 512
	// smallFrame caps request frames that carry only ids and numbers.
	smallFrame = 4 << 10
)

// Code is the status a server puts at the head of every response.
type Code uint8

// Response codes.
const (
	CodeOK            Code = 0
	CodeNotFound      Code = 1
	CodeBadRequest    Code = 2
	CodeDenied        Code = 3
	CodeQuotaExceeded Code = 4
	CodeRateLimited   Code = 5
	CodeUnavailable   Code = 6
	CodeInternal      Code = 7
	CodeTooLarge      Code = 8
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeNotFound:
		return "not found"
	case CodeBadRequest:
		return "bad request"
	case CodeDenied:
		return "denied"
	case CodeQuotaExceeded:
		return "quota exceeded"
	case CodeRateLimited:
		return "rate limited"
	case CodeUnavailable:
		return "unavailable"
	case CodeInternal:
		return "internal error"
	case CodeTooLarge:
		return "too large"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Sentinel errors. Stream clients return *Error values that match these with
// errors.Is; handlers and stores may return (wrapped) sentinels to choose the
// code a remote peer sees.
var (
	ErrNotFound      = errors.New("p2p: not found")
	ErrBadRequest    = errors.New("p2p: bad request")
	ErrDenied        = errors.New("p2p: denied")
	ErrQuotaExceeded = errors.New("p2p: quota exceeded")
	ErrRateLimited   = errors.New("p2p: rate limited")
	ErrUnavailable   = errors.New("p2p: unavailable")
	ErrTimeout       = errors.New("p2p: timeout")
	ErrBadResponse   = errors.New("p2p: bad response")
	ErrClosed        = errors.New("p2p: node closed")
)

var codeSentinels = map[Code]error{
	CodeNotFound:      ErrNotFound,
	CodeBadRequest:    ErrBadRequest,
	CodeDenied:        ErrDenied,
	CodeQuotaExceeded: ErrQuotaExceeded,
	CodeRateLimited:   ErrRateLimited,
	CodeUnavailable:   ErrUnavailable,
	CodeTooLarge:      ErrFrameTooLarge,
}

// codeOf maps a handler error to the code sent to the remote peer.
func codeOf(err error) Code {
	for code, s := range codeSentinels {
		if errors.Is(err, s) {
			return code
		}
	}
	if errors.Is(err, errDecode) || errors.Is(err, ErrMalformedMLS) {
		return CodeBadRequest
	}
	return CodeInternal
}

// Error is the error returned by every stream protocol client call.
type Error struct {
	Protocol protocol.ID
	Peer     peer.ID
	// Op is the step that failed: "open", "write", "read", "decode" or
	// "remote" (the server answered with a non-OK Code).
	Op string
	// Code is the server's status when Op is "remote".
	Code Code
	// Msg is the server's explanation when Op is "remote".
	Msg string
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s with %s: ", e.Protocol, shortID(e.Peer))
	if e.Op == "remote" {
		fmt.Fprintf(&b, "remote: %s", e.Code)
		if e.Msg != "" {
			fmt.Fprintf(&b, ": %s", e.Msg)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %v", e.Op, e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) etc. true for matching remote codes,
// and errors.Is(err, ErrTimeout) true for deadline failures.
func (e *Error) Is(target error) bool {
	if e.Op == "remote" {
		if s, ok := codeSentinels[e.Code]; ok && s == target {
			return true
		}
	}
	if target == ErrTimeout && e.Err != nil {
		var ne net.Error
		return errors.Is(e.Err, os.ErrDeadlineExceeded) || errors.Is(e.Err, context.DeadlineExceeded) ||
			(errors.As(e.Err, &ne) && ne.Timeout())
	}
	return false
}

func shortID(p peer.ID) string {
	if p == "" {
		return "<none>"
	}
	s := p.String()
	if len(s) > 12 {
		return s[len(s)-8:]
	}
	return s
}

// frameStream wraps a stream with a buffered reader and per-frame deadlines
// bounded by an overall deadline.
//
// Every frame body is accounted in the libp2p resource manager before it is
// read: its announced length is reserved from the stream's scope (and so
// from the peer's, the protocol's and the system's), and a frame the
// budget has no room for is refused unread. A server holds what it read
// until the request is handled (release); a client gives each frame's
// reservation back once the frame is read, since a response may be many
// frames, all asked for.
type frameStream struct {
	s        network.Stream
	r        *bufio.Reader
	timeout  time.Duration // per read/write
	deadline time.Time     // overall, zero for none
	hold     bool          // keep reservations until release
	reserved int
}

func newFrameStream(s network.Stream, timeout time.Duration, deadline time.Time) *frameStream {
	return &frameStream{s: s, r: bufio.NewReaderSize(s, 4096), timeout: timeout, deadline: deadline}
}

// ErrNoResources is returned when the resource manager has no memory left
// for a frame; the frame is not read.
var ErrNoResources = fmt.Errorf("%w: out of resources", ErrUnavailable)

// Reservation priorities: frames up to directAllocLimit may use the whole
// budget, larger ones only 60% of it at every scope (stream, peer,
// protocol, system), so a flood of large frames leaves room for the small
// requests that make up honest traffic (KeyPackages, Welcomes, acks).
const (
	smallFramePrio = network.ReservationPriorityAlways
	largeFramePrio = network.ReservationPriorityMedium
)

func (f *frameStream) reserve(n int) error {
	if n == 0 {
		return nil
	}
	prio := uint8(smallFramePrio)
	if n > directAllocLimit {
		prio = largeFramePrio
	}
	if err := f.s.Scope().ReserveMemory(n, prio); err != nil {
		return fmt.Errorf("%w: %d-byte frame: %w", ErrNoResources, n, err)
	}
	f.reserved += n
	return nil
}

// release gives back the memory reserved for frames read so far.
func (f *frameStream) release() {
	if f.reserved > 0 {
		f.s.Scope().ReleaseMemory(f.reserved)
		f.reserved = 0
	}
}

func (f *frameStream) nextDeadline() time.Time {
	d := time.Now().Add(f.timeout)
	if !f.deadline.IsZero() && f.deadline.Before(d) {
		d = f.deadline
	}
	return d
}

// read reads one frame of at most max bytes. Memory is bounded by the frame
// cap, by the memory reserved for it in the resource manager before the
// body is read, and by readFrame growing large bodies only as bytes arrive.
func (f *frameStream) read(max int) ([]byte, error) {
	if err := f.s.SetReadDeadline(f.nextDeadline()); err != nil {
		return nil, err
	}
	b, err := readFrameReserving(f.r, max, f.reserve)
	if !f.hold {
		f.release()
	}
	return b, err
}

func (f *frameStream) write(body []byte, max int) error {
	if err := f.s.SetWriteDeadline(f.nextDeadline()); err != nil {
		return err
	}
	return writeFrame(f.s, body, max)
}

// writeStatus writes a response head: code, message, body.
func (f *frameStream) writeStatus(code Code, msg string, body []byte, max int) error {
	if len(msg) > maxStatusMsgLen {
		msg = msg[:maxStatusMsgLen]
	}
	msg = strings.ToValidUTF8(msg, "?")
	var e enc
	e.u8(uint8(code))
	e.str(msg)
	e.fixed(body)
	return f.write(e.body(), max+maxStatusMsgLen+16)
}

// readStatus reads a response head and returns its body or a remote error.
func (f *frameStream) readStatus(max int) (Code, string, []byte, error) {
	b, err := f.read(max + maxStatusMsgLen + 16)
	if err != nil {
		return 0, "", nil, err
	}
	return decodeStatus(b)
}

// decodeStatus splits a response head into code, message and body.
func decodeStatus(b []byte) (Code, string, []byte, error) {
	d := newDec(b)
	code := Code(d.u8())
	msg := d.str(maxStatusMsgLen)
	if d.err != nil {
		return 0, "", nil, d.err
	}
	return code, msg, d.rest(), nil
}

// call runs the client side of one request: open a stream to p, hand it to
// fn, close it. Every failure is returned as *Error.
func (n *Node) call(ctx context.Context, p peer.ID, proto protocol.ID, fn func(*frameStream) error) error {
	if n.ctx.Err() != nil {
		return &Error{Protocol: proto, Peer: p, Op: "open", Err: ErrClosed}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.requestTimeout)
		defer cancel()
	}
	// Our request/response protocols move little data and are useful even
	// over limited relay circuits (e.g. fetching a Welcome from a public
	// relay that caps circuits).
	sctx := network.WithAllowLimitedConn(ctx, "canopy request")
	s, err := n.h.NewStream(sctx, p, proto)
	if err != nil {
		return &Error{Protocol: proto, Peer: p, Op: "open", Err: ctxErr(ctx, err)}
	}
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	fs := newFrameStream(s, n.cfg.requestTimeout, deadline)
	defer fs.release()
	if err := fn(fs); err != nil {
		_ = s.Reset()
		var pe *Error
		if errors.As(err, &pe) {
			pe.Protocol, pe.Peer = proto, p
			return pe
		}
		op := "read"
		var oe opError
		if errors.As(err, &oe) {
			op, err = oe.op, oe.err
		} else if errors.Is(err, errDecode) || errors.Is(err, ErrMalformedMLS) {
			op = "decode"
		}
		return &Error{Protocol: proto, Peer: p, Op: op, Err: ctxErr(ctx, err)}
	}
	// fn read the whole response, which is the outcome. Close only frees
	// the stream: over QUIC it fails whenever the server closed first (a
	// QUIC Close also stops reading, which cancels our send side).
	_ = s.Close()
	return nil
}

// opError labels an error with the client step it happened in.
type opError struct {
	op  string
	err error
}

func (e opError) Error() string { return e.op + ": " + e.err.Error() }
func (e opError) Unwrap() error { return e.err }

// writeReq writes a request frame, labelling failures as "write".
func writeReq(f *frameStream, body []byte, max int) error {
	if err := f.write(body, max); err != nil {
		return opError{"write", err}
	}
	return nil
}

// expectOK reads a response head; a non-OK code becomes a remote *Error.
func expectOK(f *frameStream, max int) ([]byte, error) {
	return expectOKWith(f.read, max)
}

// expectOKWith is expectOK reading frames with read.
func expectOKWith(read func(max int) ([]byte, error), max int) ([]byte, error) {
	b, err := read(max + maxStatusMsgLen + 16)
	if err != nil {
		return nil, err
	}
	code, msg, body, err := decodeStatus(b)
	if err != nil {
		return nil, err
	}
	if code != CodeOK {
		return nil, &Error{Op: "remote", Code: code, Msg: msg}
	}
	return body, nil
}

func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// serverFunc handles one inbound request on a canopy stream protocol. It
// reads the request itself (the first frame is already read into req), writes
// its responses and returns nil; or returns an error, which is mapped to a
// status code and sent if nothing has been written yet.
type serverFunc func(ctx context.Context, f *frameStream, from peer.ID, req []byte) error

// errResponded tells serve that the handler already wrote a status.
var errResponded = errors.New("response written")

// serve wraps fn as a stream handler: deadlines, request size cap, per-peer
// request rate limit, metrics and error mapping.
func (n *Node) serve(proto protocol.ID, maxReq int, fn serverFunc) network.StreamHandler {
	return func(s network.Stream) {
		from := s.Conn().RemotePeer()
		start := time.Now()
		f := newFrameStream(s, n.cfg.serverTimeout, time.Now().Add(n.cfg.handlerTimeout))
		f.hold = true
		code := n.handle(proto, f, from, maxReq, fn)
		f.release()
		n.metrics.request(proto, code, time.Since(start))
		_ = s.Close()
	}
}

// handle checks the peer's request rate before reading anything, then
// reads the request within the resource manager's budget and runs fn.
func (n *Node) handle(proto protocol.ID, f *frameStream, from peer.ID, maxReq int, fn serverFunc) Code {
	if !n.reqLimit.allow(from, 1) {
		_ = f.writeStatus(CodeRateLimited, "too many requests", nil, 0)
		return CodeRateLimited
	}
	req, err := f.read(maxReq)
	if err != nil {
		switch {
		case errors.Is(err, ErrFrameTooLarge):
			_ = f.writeStatus(CodeTooLarge, err.Error(), nil, 0)
			return CodeTooLarge
		case errors.Is(err, ErrNoResources):
			_ = f.writeStatus(CodeUnavailable, "busy: no memory for the request", nil, 0)
			return CodeUnavailable
		}
		n.log.Debug("request read failed", "protocol", proto, "peer", from, "err", err)
		_ = f.s.Reset()
		return CodeBadRequest
	}
	ctx, cancel := context.WithDeadline(n.ctx, f.deadline)
	defer cancel()
	err = fn(ctx, f, from, req)
	if err == nil {
		return CodeOK
	}
	if errors.Is(err, errResponded) {
		var se statusErr
		if errors.As(err, &se) {
			return se.code
		}
		return CodeInternal
	}
	code := codeOf(err)
	msg := code.String()
	if code != CodeInternal {
		// Sentinel-coded errors are meant for the peer; internal errors are
		// logged here and not disclosed.
		msg = err.Error()
	} else {
		n.log.Warn("request handler failed", "protocol", proto, "peer", from, "err", err)
	}
	if werr := f.writeStatus(code, msg, nil, 0); werr != nil {
		n.log.Debug("writing error status failed", "protocol", proto, "peer", from, "err", werr)
	}
	return code
}

// statusErr reports a status the handler has already written.
type statusErr struct{ code Code }

func (e statusErr) Error() string { return "status " + e.code.String() + " written" }
func (e statusErr) Unwrap() error { return errResponded }
