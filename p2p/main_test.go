package p2p

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	libp2p "github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMain lets the test binary double as a flooding peer in its own
// process (floodPeerMain), so that a victim's heap can be measured
// without the attackers' buffers in it.
func TestMain(m *testing.M) {
	if os.Getenv("CANOPY_P2P_FLOOD_PEER") != "" {
		if err := floodPeerMain(); err != nil {
			fmt.Fprintln(os.Stderr, "flood peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// floodPeerMain is a throw-away gossipsub peer: it connects to the victim
// (CANOPY_P2P_FLOOD_PEER, a /p2p multiaddr), joins the topic of the group
// (CANOPY_P2P_FLOOD_GROUP, hex), prints "id <peer id>" once in the topic,
// and on a line on stdin publishes CANOPY_P2P_FLOOD_N maximal Commit
// frames, prints "sent", and waits for stdin to close.
func floodPeerMain() error {
	info, err := peer.AddrInfoFromString(os.Getenv("CANOPY_P2P_FLOOD_PEER"))
	if err != nil {
		return err
	}
	group, err := hex.DecodeString(os.Getenv("CANOPY_P2P_FLOOD_GROUP"))
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(os.Getenv("CANOPY_P2P_FLOOD_N"))
	if err != nil {
		return err
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings(loopTCP), libp2p.DisableMetrics())
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = 100 * time.Millisecond
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { s := sha256.Sum256(m.Data); return string(s[:]) }),
		pubsub.WithGossipSubParams(params),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(DefaultMaxMessageSize+64<<10))
	if err != nil {
		return err
	}
	if err := h.Connect(ctx, *info); err != nil {
		return err
	}
	pt, err := ps.Join(TopicName(group))
	if err != nil {
		return err
	}
	if _, err := pt.Subscribe(); err != nil {
		return err
	}
	for len(pt.ListPeers()) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Printf("id %s\n", h.ID())
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return nil
	}
	payload := make([]byte, DefaultMaxMessageSize-4096)
	for i := range n {
		copy(payload, fmt.Sprintf("%s/%d", h.ID(), i))
		frame := BuildPrivateMessage(group, 1, ContentCommit, nil, []byte("sender-data"), payload)
		if err := pt.Publish(ctx, frame); err != nil {
			return err
		}
	}
	fmt.Println("sent")
	for in.Scan() {
	}
	return nil
}
