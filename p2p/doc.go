// Package p2p is canopy's network layer: a libp2p host that finds the members
// of a group on the LAN or across the internet, carries their MLS messages on
// gossipsub, and delivers what gossip cannot (KeyPackages, Welcomes, catch-up
// after being offline, ratchet trees). It also runs relays, the headless
// peers anyone can operate. p2p moves opaque bytes: it never sees group keys
// and imports no other canopy package.
//
// # Starting a node
//
// A node's identity is a libp2p key the caller persists (MarshalIdentity,
// UnmarshalIdentity):
//
//	key, _ := p2p.GenerateIdentity()
//	relays, _ := p2p.ParseAddrInfos(bootstrapFlags)
//	node, err := p2p.New(ctx, key,
//		p2p.WithRelays(relays...),          // bootstrap, autorelay, mailboxes
//		p2p.WithLogger(logger),             // default: discard
//		p2p.WithHandlers(p2p.Handlers{...}), // see below
//	)
//	defer node.Close()
//
// The host listens on TCP and QUIC (TLS or Noise, yamux) with a resource
// manager sized for a chat peer and a connection manager, uses AutoNAT v2,
// hole punching and, behind NAT, autorelay through the relays. It finds peers
// by mDNS on the LAN (WithMDNS(false) turns it off), through the Kademlia DHT
// under the /canopy prefix (bootstrapped from the relays and
// WithBootstrapPeers), and by gossipsub peer exchange. Nothing is ever
// printed: libp2p's own logs go to the WithLogger logger too.
//
// # Peers and connectivity
//
// Packages above p2p see the network only through the Node: Connect,
// Disconnect, IsConnected, AddAddrs (addresses of a peer known from
// elsewhere, such as a contact card), Addrs and DirectAddrs (the node's
// own), Reachability and Status. Peer ids and addresses are PeerID,
// AddrInfo and Multiaddr, aliases of libp2p's types (see PeerID for why).
// Subscribe delivers connectivity events on a channel:
//
//	sub := node.Subscribe(p2p.WithEventKinds(p2p.PeerUp, p2p.PeerDown))
//	defer sub.Close()
//	for ev := range sub.C {
//		... // ev.Kind, ev.Peer
//	}
//
// The node watches libp2p in one place (one network notifiee, one event
// bus subscription for AutoNAT's verdict and address changes) and never
// blocks on a subscriber: an event that finds the channel full is dropped
// and counted (Subscription.Dropped).
//
// # Groups
//
// Each group has one gossipsub topic, named by TopicName from a hash of the
// group id. JoinGroup joins it and announces the node in the DHT so that
// other members find it:
//
//	topic, err := node.JoinGroup(groupID, p2p.WithTopicValidator(engineCheck))
//	res, err := topic.Publish(ctx, mlsMessage) // an MLSMessage of the group
//	for {
//		msg, err := topic.Next(ctx)          // frames of others, validated
//		...
//	}
//
// Every frame must be an MLSMessage (PublicMessage or PrivateMessage) of the
// topic's group; p2p checks its header (ParseMLSHeader), its size
// (WithMaxMessageSize), the sender's rate, and then calls the engine's
// Validator, which accepts only frames it authenticated with the epoch's
// keys and ignores (without penalty) those it cannot judge yet, such as
// future epochs, which the engine holds in bounded memory. A frame over a
// neighbour's rate limit is ignored, not rejected: the neighbour may be
// forwarding others' frames, and a rejection would count against its score.
// A node keeps its own frames under the limit it applies (Publish waits
// for its turn beyond 80% of it), so honest senders are never the ones
// dropped.
// Frames that arrive directly over /canopy/inbox/1 pass the same checks;
// p2p refuses them from peers whose score is below gossipsub's gossip
// threshold, counts invalid ones against the sender's score, and
// re-publishes only what the Validator accepted. Message ids are content hashes, so copies of a frame de-duplicate
// however they arrive. Publish right after JoinGroup waits briefly for the
// first peer; a frame published while the topic has no peer at all is sent
// directly to peers that join later (PublishResult.Queued). Gossip does not
// preserve order, and a node that was away misses what was said meanwhile:
// it catches up with Sync/SyncAll from a member or relay (SyncAfter: only
// what the peer stored since an earlier sync ended).
//
// Behind NAT, two peers first meet over a relayed connection; once hole
// punching opens a direct one, each closes the relayed one as soon as it
// carries only gossip, so gossip does not depend on the relay any longer.
// Frames gossiped on the closed streams may be lost: WithPeerJoined tells
// the engine each time a peer announces its subscription again (its new
// stream is open), the moment to catch up from it; and a peer gossipsub
// forgot in the switch still gets our frames, sent directly (Topic.Peers).
//
// Gossipsub's own queues sit outside the resource manager: it reads RPCs of
// up to the maximal frame size plus 64 KiB (M, 8.06 MiB by default) and
// queues their frames before any Validator runs. A gossip budget bounds
// them (gossipbudget.go): an RPC inspector, run before gossipsub queues
// anything, admits a frame only while the frames admitted and not yet
// judged stay within 16 MiB for frames up to 64 KiB and 4 × M for larger
// ones, across all senders; the rest is stripped unscored (the sender is
// not at fault for a full budget). A frame's bytes are released when
// gossipsub reports its fate (delivered, ignored, rejected, throttled or a
// duplicate) and, for the few paths where it drops a frame silently, after
// the 30 s validator timeout plus 5 s. Small and large frames have separate
// budgets, so a flood of maximal frames leaves chat traffic alone. Worst
// case of gossip frame memory on a node with P gossip peers:
//
//	16 MiB + 4 × M            frames admitted, queued or being validated
//	+ (32 + 2 × P) × M        RPCs read but not yet inspected (gossipsub's
//	                          incoming queue; per peer, one being read and
//	                          one waiting for that queue)
//
// about 48 MiB + (32 + 2P) × 8 MiB; the second term is transient, as the
// inspector drains it at the event loop's pace, and P is capped by the
// connection manager and resource manager. Before the budget, every
// neighbour could have its 32 MiB byte-rate burst held by a slow Validator
// (TestGossipFloodStaysInBudget: six flooding peers, 24 maximal frames
// held, +199 MiB live heap; now at most 4 held, +42 MiB).
//
// # Direct protocols
//
// Length-prefixed, size-capped request/response protocols with deadlines.
// A server checks the peer's request rate before it reads anything, and
// reserves every frame's announced length in the libp2p resource manager
// (stream, peer, protocol and system scopes) before it buffers the body:
// with the default 256 MiB budget a peer has at most two maximal (8 MiB)
// requests per protocol in flight, and large frames leave 40% of every
// scope to small ones. Every client error is an *Error that matches the
// sentinel errors (ErrNotFound, ErrTimeout, ...) with errors.Is:
//
//	/canopy/keypackage/1  FetchKeyPackage   Handlers.KeyPackage, relay cache
//	/canopy/inbox/1       SendInbox         Handlers.Inbox (Welcomes, direct)
//	/canopy/sync/1        Sync, SyncAfter   Handlers.Sync, relay topic log
//	/canopy/tree/1        FetchTree         Handlers.Tree
//	/canopy/blob/1        FetchBlob         Handlers.Blob (encrypted files), relay blob store
//	/canopy/blobput/1     PutBlob           relay blob store (RelayConfig.BlobDir)
//	/canopy/relay/1       KeepTopic, Deposit, FetchMailbox, PutKeyPackages
//
// /canopy/blob/1 moves file ciphertext by content id: a request names a
// byte range (at most MaxBlobRange), the response is a status and then the
// raw bytes, streamed from the holder's disk, never buffered whole. A
// holder serves at most 2 responses to one peer and 16 in all at a time;
// a requester gives up on a holder silent for 10 s. The bytes are
// authenticated by the requester (package blob), not by p2p.
//
// /canopy/blobput/1 uploads ciphertext to a relay with a blob directory, in
// requests of at most 8 MiB appended at the end of the relay's copy; the
// relay says go before the bytes are sent, so a refusal (quota, request
// rate) costs no upload. PutBlob resumes where the relay's copy ends after
// a cut (with half the request size, down to 256 KiB, for slow uplinks)
// and waits when over the request rate. The relay serves the file on
// /canopy/blob/1 until RelayConfig.BlobTTL after the upload completed. The relay cannot check
// the bytes (ids derive from keys it never sees; see ProtocolBlobPut), so
// a complete file is never replaced and receivers check every chunk.
//
// SendOrDeposit delivers to a peer directly or, if it is offline, leaves the
// message in relay mailboxes, which the peer drains with FetchMailbox when it
// comes back.
//
// # Relays
//
// NewRelay runs a relay: a DHT server and bootstrap peer, a circuit relay v2
// service whose circuits are unlimited so that gossipsub runs over them, a
// keeper of the topics members ask it to keep (topics joined on a node with
// WithRelays ask by themselves), a holder of mailboxes and KeyPackages and,
// with a BlobDir, of file ciphertext, each bounded by Quotas (see below). Storage sits behind the TopicLog,
// LeaseStore (keep-topic leases, so a restarted relay rejoins its topics),
// Mailbox and KeyPackageCache interfaces; memory implementations are
// included and package p2ptest checks other implementations against the
// same contract.
// The relay exports Prometheus metrics (its own and go-libp2p's) and a
// health report.
//
// # What a relay can check, and how it is bounded instead
//
// A relay holds no group keys. It can check that a frame is a well-formed
// MLSMessage of the topic's group (the hash of the group id in its header
// matches the topic name), its size and its sender's rate; it cannot tell
// a member's frame from a stranger's who knows the group id, nor a
// Welcome from junk, nor whether whoever asks for a topic's log belongs
// to the group. Topic names are not secrets: gossipsub tells every
// connected peer which topics the relay subscribes to, so anyone connected
// can learn the kept topics and sync their logs. What it gets is
// ciphertext, sizes, timing and epoch numbers, which every peer carrying
// the topic sees anyway; the relay has no call that lists its topics, and
// serves sync only for a topic name given in the request. Members decide
// what to accept (the engine's Validator), not the relay.
//
// So a relay bounds everything by source rather than by membership
// (Quotas, DefaultQuotas):
//
//   - stream requests: per peer (10/s, bursts of 100), after which the
//     resource manager caps concurrent streams and memory per peer, per
//     protocol and in total;
//   - kept topics: per peer (64), per IP address or IPv6 /64 (1,024) and
//     in total (10,000); a peer connected for less than an hour gets a
//     lease of at most an hour, so throw-away ids keep topics only briefly;
//     each topic's log holds at most 256 MiB (oldest frames evicted), all
//     logs together 8 GiB, beyond which the largest topic's oldest frames
//     are evicted: a flood evicts its own topic's history, not a quiet
//     group's;
//   - mailboxes: items of at most 1 MiB (a Welcome with its tree inline);
//     per recipient 256 items / 64 MiB, of which one sender may fill 32
//     items / 2 MiB; one sender at most 256 items / 16 MiB in all
//     mailboxes; one IP address may deposit 64 MiB an hour; all mailboxes
//     together at most 65,536 items / 1 GiB;
//   - KeyPackages: per owner 256 packages / 1 MiB; at most 16 one-time
//     packages of an owner are handed out a day, 4 of them to requesters
//     from one address; beyond that only the last-resort package;
//   - files (relays with a blob directory): at most 256 MiB each, checked
//     from the announced size before a byte is read; a file's whole size
//     counts from the start of its upload until it expires (7 days after
//     completion, an abandoned upload after an hour idle): per peer 1 GiB,
//     per IP address or IPv6 /64 2 GiB, in total 16 GiB and 65,536 files;
//     at most 2 uploads of one peer and 16 in all run at once.
//
// The global caps are the last line: peers at many addresses can still
// reach them and then deny service (refused deposits, keeps), but cannot
// make the relay use more memory or disk than they allow.
//
// # Concurrency
//
// Node, Topic and Relay are safe for concurrent use. Each topic's mutable
// state is owned by its own goroutine, as is a relay's table of kept topics;
// Handlers and Validators are called concurrently and must not block for
// long.
package p2p
