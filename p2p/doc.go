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
// Validator, which must accept frames of future epochs (the engine buffers
// them). Message ids are content hashes, so copies of a frame de-duplicate
// however they arrive. Publish right after JoinGroup waits briefly for the
// first peer; a frame published while the topic has no peer at all is sent
// directly to peers that join later (PublishResult.Queued). Gossip does not
// preserve order, and a node that was away misses what was said meanwhile:
// it catches up with Sync/SyncAll from a member or relay.
//
// # Direct protocols
//
// Length-prefixed, size-capped request/response protocols with deadlines;
// every client error is an *Error that matches the sentinel errors
// (ErrNotFound, ErrTimeout, ...) with errors.Is:
//
//	/canopy/keypackage/1  FetchKeyPackage   Handlers.KeyPackage, relay cache
//	/canopy/inbox/1       SendInbox         Handlers.Inbox (Welcomes, direct)
//	/canopy/sync/1        Sync, SyncAll     Handlers.Sync, relay topic log
//	/canopy/tree/1        FetchTree         Handlers.Tree
//	/canopy/relay/1       KeepTopic, Deposit, FetchMailbox, PutKeyPackages
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
// WithRelays ask by themselves), and a holder of mailboxes and KeyPackages,
// each bounded by per-peer Quotas. Storage sits behind the TopicLog,
// LeaseStore (keep-topic leases, so a restarted relay rejoins its topics),
// Mailbox and KeyPackageCache interfaces; memory implementations are
// included and package p2ptest checks other implementations against the
// same contract.
// The relay exports Prometheus metrics (its own and go-libp2p's) and a
// health report.
//
// # Concurrency
//
// Node, Topic and Relay are safe for concurrent use. Each topic's mutable
// state is owned by its own goroutine, as is a relay's table of kept topics;
// Handlers and Validators are called concurrently and must not block for
// long.
package p2p
