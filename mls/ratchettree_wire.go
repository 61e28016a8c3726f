package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// NodeType distinguishes leaf from parent nodes (§7.8):
//
//	enum {
//	    reserved(0),
//	    leaf(1),
//	    parent(2),
//	    (255)
//	} NodeType;
//
// Closed set: any other value is ErrMalformed.
type NodeType uint8

const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

func (t NodeType) String() string {
	switch t {
	case NodeTypeLeaf:
		return "leaf"
	case NodeTypeParent:
		return "parent"
	}
	return fmt.Sprintf("NodeType(%d)", uint8(t))
}

// ParentNode is the content of a non-blank parent node (§7.1):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    uint32 unmerged_leaves<V>;
//	} ParentNode;
//
// The sortedness of unmerged_leaves is a tree-validation rule, not checked
// when decoding.
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

func (p *ParentNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, p.EncryptionKey)
	addOpaque(b, p.ParentHash)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, l := range p.UnmergedLeaves {
			b.AddUint32(l)
		}
	})
}

func (p *ParentNode) unmarshal(s *cryptobyte.String) bool {
	*p = ParentNode{}
	if !readOpaque(s, &p.EncryptionKey) || !readOpaque(s, &p.ParentHash) {
		return false
	}
	var body cryptobyte.String
	if !readVarVector(s, &body) || len(body)%4 != 0 {
		return false
	}
	leaves := make([]uint32, 0, len(body)/4)
	for !body.Empty() {
		var l uint32
		body.ReadUint32(&l)
		leaves = append(leaves, l)
	}
	p.UnmergedLeaves = leaves
	return true
}

// Marshal returns the encoding of p.
func (p *ParentNode) Marshal() ([]byte, error) { return marshalStruct(p) }

// Unmarshal decodes p from data, rejecting trailing bytes.
func (p *ParentNode) Unmarshal(data []byte) error { return unmarshalStruct(data, p, "ParentNode") }

// Node is a non-blank ratchet tree node (§12.4.3.3):
//
//	struct {
//	    NodeType node_type;
//	    select (Node.node_type) {
//	        case leaf:   LeafNode leaf_node;
//	        case parent: ParentNode parent_node;
//	    };
//	} Node;
//
// Exactly the body selected by Type is set. Blank nodes are nil *Node.
type Node struct {
	Type   NodeType
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(n.Type))
	switch n.Type {
	case NodeTypeLeaf:
		if n.Leaf == nil {
			b.SetError(errors.New("mls: leaf Node has no LeafNode"))
			return
		}
		n.Leaf.marshal(b)
	case NodeTypeParent:
		if n.Parent == nil {
			b.SetError(errors.New("mls: parent Node has no ParentNode"))
			return
		}
		n.Parent.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode node of type %v", n.Type))
	}
}

func (n *Node) unmarshal(s *cryptobyte.String) bool {
	*n = Node{}
	if !s.ReadUint8((*uint8)(&n.Type)) {
		return false
	}
	switch n.Type {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		return n.Leaf.unmarshal(s)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		return n.Parent.unmarshal(s)
	default:
		return false
	}
}

// Marshal returns the encoding of n.
func (n *Node) Marshal() ([]byte, error) { return marshalStruct(n) }

// Unmarshal decodes n from data, rejecting trailing bytes.
func (n *Node) Unmarshal(data []byte) error { return unmarshalStruct(data, n, "Node") }

// RatchetTree is the wire form of a ratchet tree, as carried by the
// ratchet_tree extension (§12.4.3.3), the test vectors and canopy's
// out-of-band tree transfer:
//
//	optional<Node> ratchet_tree<V>;
//
// Entry i is node i of the array representation (leaves at even indices,
// parents at odd ones); nil is a blank node.
//
// Decoding is strict so that each tree has exactly one encoding: the vector
// must be non-empty, its last entry non-blank (§12.4.3.3: the sender MUST NOT
// include trailing blanks and the receiver MUST check), and each node's type
// must match the parity of its index. The receiver's implicit extension to
// 2^(d+1)-1 nodes is left to the tree code (it is virtual). Encoding drops
// trailing blank nodes, so a full-width array may be passed.
type RatchetTree []*Node

var errEmptyRatchetTree = errors.New("mls: ratchet tree has no non-blank node")

func (t *RatchetTree) marshal(b *cryptobyte.Builder) {
	nodes := *t
	for len(nodes) > 0 && nodes[len(nodes)-1] == nil {
		nodes = nodes[:len(nodes)-1]
	}
	if len(nodes) == 0 {
		b.SetError(errEmptyRatchetTree)
		return
	}
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i, n := range nodes {
			if n != nil && n.Type != nodeTypeAt(i) {
				b.SetError(fmt.Errorf("mls: ratchet tree node %d is a %v node", i, n.Type))
				return
			}
			addOptional(b, n != nil, n.marshal)
		}
	})
}

func nodeTypeAt(i int) NodeType {
	if i%2 == 0 {
		return NodeTypeLeaf
	}
	return NodeTypeParent
}

func (t *RatchetTree) unmarshal(s *cryptobyte.String) bool {
	return t.unmarshalWith(s, nil)
}

// unmarshalWith decodes like unmarshal and, if onLeaf is set, passes it
// the index and the encoding (a sub-slice of the input) of each LeafNode.
func (t *RatchetTree) unmarshalWith(s *cryptobyte.String, onLeaf func(i int, enc []byte)) bool {
	nodes := RatchetTree{}
	ok := readVector(s, func(s *cryptobyte.String) bool {
		var present bool
		var n *Node
		if !readOptional(s, &present, func(s *cryptobyte.String) bool {
			n = new(Node)
			before := *s
			if !n.unmarshal(s) {
				return false
			}
			if onLeaf != nil && n.Type == NodeTypeLeaf {
				onLeaf(len(nodes), before[1:len(before)-len(*s)]) // after node_type
			}
			return true
		}) {
			return false
		}
		if !present {
			nodes = append(nodes, nil)
			return true
		}
		if n.Type != nodeTypeAt(len(nodes)) {
			return false
		}
		nodes = append(nodes, n)
		return true
	})
	if !ok || len(nodes) == 0 || nodes[len(nodes)-1] == nil {
		return false
	}
	*t = nodes
	return true
}

// Marshal returns the encoding of t without trailing blank nodes.
func (t RatchetTree) Marshal() ([]byte, error) { return marshalStruct(&t) }

// Unmarshal decodes t from data, rejecting trailing bytes.
func (t *RatchetTree) Unmarshal(data []byte) error {
	return unmarshalStruct(data, t, "RatchetTree")
}

// decodeRatchetTree decodes an `optional<Node> ratchet_tree<V>` encoding
// like RatchetTree.Unmarshal and also returns the encoding of every leaf,
// by leaf index (nil for blank leaves; sub-slices of data, which the nodes
// alias too).
func decodeRatchetTree(data []byte) (RatchetTree, [][]byte, error) {
	var t RatchetTree
	var encs [][]byte
	s := cryptobyte.String(data)
	if !t.unmarshalWith(&s, func(i int, enc []byte) {
		for len(encs) < i/2 {
			encs = append(encs, nil)
		}
		encs = append(encs, enc)
	}) {
		return nil, nil, fmt.Errorf("%w: invalid RatchetTree", ErrMalformed)
	}
	if !s.Empty() {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes after RatchetTree", ErrMalformed, len(s))
	}
	return t, encs, nil
}
