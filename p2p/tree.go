package p2p

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// /canopy/tree/1 fetches a group's ratchet tree, for a joiner whose Welcome
// left the tree out (DESIGN.md §2). The joiner checks the tree against the
// tree hash in the signed GroupInfo; p2p only moves bytes.
//
//	request:  topic str | epoch uvarint | tree_hash bytes (<= 64)
//	response: status | total uvarint, then chunk frames of at most 1 MiB
//	          until total bytes have been sent (total <= MaxTreeSize)

// TreeRequest asks for the ratchet tree of Topic's group at Epoch whose tree
// hash is TreeHash (either may be zero/empty if unknown).
type TreeRequest struct {
	Topic    string
	Epoch    uint64
	TreeHash []byte
}

// TreeHandler serves a ratchet tree. Return an error wrapping ErrNotFound if
// the node does not have it.
type TreeHandler func(ctx context.Context, from peer.ID, req TreeRequest) ([]byte, error)

const maxTreeHashLen = 64

func encodeTreeRequest(r TreeRequest) []byte {
	var e enc
	e.str(r.Topic)
	e.uvarint(r.Epoch)
	e.bytes(r.TreeHash)
	return e.body()
}

func decodeTreeRequest(b []byte) (TreeRequest, error) {
	d := newDec(b)
	r := TreeRequest{Topic: d.str(maxTopicLen), Epoch: d.uvarint(), TreeHash: d.bytes(maxTreeHashLen)}
	if err := d.done(); err != nil {
		return TreeRequest{}, err
	}
	if !isTopicName(r.Topic) {
		return TreeRequest{}, fmt.Errorf("%w: bad topic name", errDecode)
	}
	return r, nil
}

func (n *Node) serveTree(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	r, err := decodeTreeRequest(req)
	if err != nil {
		return err
	}
	h := n.getHandlers().Tree
	if h == nil {
		return fmt.Errorf("%w: no trees served", ErrUnavailable)
	}
	tree, err := h(ctx, from, r)
	if err != nil {
		return err
	}
	if len(tree) == 0 {
		return fmt.Errorf("%w: empty tree", ErrNotFound)
	}
	if len(tree) > MaxTreeSize {
		return fmt.Errorf("%w: tree of %d bytes exceeds %d", ErrFrameTooLarge, len(tree), MaxTreeSize)
	}
	var e enc
	e.uvarint(uint64(len(tree)))
	if err := f.writeStatus(CodeOK, "", e.body(), 16); err != nil {
		return statusErr{CodeInternal}
	}
	for len(tree) > 0 {
		chunk := tree[:min(len(tree), treeChunkSize)]
		if err := f.write(chunk, treeChunkSize); err != nil {
			return statusErr{CodeInternal}
		}
		tree = tree[len(chunk):]
	}
	return nil
}

// FetchTree fetches a ratchet tree from peer `from`.
func (n *Node) FetchTree(ctx context.Context, from peer.ID, req TreeRequest) ([]byte, error) {
	if len(req.TreeHash) > maxTreeHashLen {
		return nil, fmt.Errorf("p2p: tree hash longer than %d bytes", maxTreeHashLen)
	}
	if !isTopicName(req.Topic) {
		return nil, fmt.Errorf("p2p: %q is not a canopy group topic", req.Topic)
	}
	var tree []byte
	err := n.call(ctx, from, ProtocolTree, func(f *frameStream) error {
		if err := writeReq(f, encodeTreeRequest(req), smallFrame); err != nil {
			return err
		}
		var err error
		tree, err = readTreeResponse(f.read)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// readTreeResponse reads a /canopy/tree/1 response with read: a status
// whose body is the tree's total size, then chunks that add up to it.
// Memory grows with the bytes actually received, not the announced total.
func readTreeResponse(read func(max int) ([]byte, error)) ([]byte, error) {
	body, err := expectOKWith(read, 16)
	if err != nil {
		return nil, err
	}
	d := newDec(body)
	total := d.uvarint()
	if err := d.done(); err != nil {
		return nil, err
	}
	if total == 0 || total > MaxTreeSize {
		return nil, fmt.Errorf("%w: tree of %d bytes (limit %d)", ErrFrameTooLarge, total, MaxTreeSize)
	}
	tree := make([]byte, 0, min(total, treeChunkSize))
	for uint64(len(tree)) < total {
		chunk, err := read(treeChunkSize)
		if err != nil {
			return nil, err
		}
		if len(chunk) == 0 || uint64(len(tree)+len(chunk)) > total {
			return nil, fmt.Errorf("%w: tree chunks do not add up to %d bytes", ErrBadResponse, total)
		}
		tree = append(tree, chunk...)
	}
	return tree, nil
}
