package p2p

// The one place of a relay's quota policy: what each bound is, its
// default, and how zero fields take the defaults.

import "time"

// Quotas bound what one peer, one source address and everyone together can
// make a relay store and do. A relay holds no group keys and cannot tell a
// member from a stranger (see the package documentation), so every
// per-peer bound also has a per-address or global one: minting peer ids
// alone takes no quota over.
type Quotas struct {
	// Topics caps the topics the relay keeps in total.
	Topics int
	// TopicsPerPeer caps the topics one peer keeps leased.
	TopicsPerPeer int
	// TopicsPerIP caps the topic leases held by peers connecting from one
	// IP address (peers of an office or a family share one).
	TopicsPerIP int
	// NewPeerLease caps the leases granted to a peer whose connection is
	// younger than NewPeerLease itself: a throw-away peer id keeps a
	// topic only briefly after it leaves, a member simply renews sooner.
	NewPeerLease time.Duration
	// TopicBytes caps one topic's log; the oldest frames are evicted.
	TopicBytes int64
	// TopicLogBytes caps all topics' logs together; the oldest frames of
	// the largest topic are evicted, so a flood costs its own topic's
	// history, not the quiet groups'.
	TopicLogBytes int64
	// MailboxItems and MailboxBytes cap one recipient's mailbox.
	MailboxItems int
	MailboxBytes int64
	// MailboxItemsPerSender and MailboxBytesPerSender cap one depositor's
	// share of a mailbox, so one stranger cannot fill it.
	MailboxItemsPerSender int
	MailboxBytesPerSender int64
	// MaxMailItem caps one deposited message: sized for Welcomes, which
	// carry the ratchet tree inline only for small groups (chat's
	// ExternalTreeAbove, 64 members, with credentials of a few KiB).
	MaxMailItem int
	// MailItemsPerSender and MailBytesPerSender cap what one depositor has
	// waiting in all mailboxes together (deposits for made-up recipients).
	MailItemsPerSender int
	MailBytesPerSender int64
	// MailItems and MailBytes cap all mailboxes together.
	MailItems int
	MailBytes int64
	// DepositBytesPerIP limits the mail bytes peers from one IP address
	// may deposit (token bucket, in bytes): it bounds how fast one address
	// can fill the global mail quota, whatever peer ids it uses.
	DepositBytesPerIP RateLimit
	// KeyPackages and KeyPackageBytes cap one owner's KeyPackages.
	KeyPackages     int
	KeyPackageBytes int64
	// KeyPackageHandouts limits the one-time KeyPackages of one owner
	// handed out to everyone together, and KeyPackageHandoutsPerIP those
	// handed out to requesters from one IP address (token buckets, in
	// packages). Beyond them only the owner's last-resort package is
	// served, so nobody can drain a user's one-time packages.
	KeyPackageHandouts      RateLimit
	KeyPackageHandoutsPerIP RateLimit
	// RequestRate limits stream requests per peer.
	RequestRate RateLimit
	// MaxBlob caps one file (ciphertext bytes) uploaded to the relay
	// (/canopy/blobput/1); its announced size is checked before a byte is
	// accepted.
	MaxBlob int64
	// BlobBytesPerPeer and BlobBytesPerIP cap the file bytes one peer and
	// the peers at one IP address (IPv6: one /64) have on the relay, and
	// BlobBytes and Blobs all files together. A file's whole size counts
	// from the start of its upload until it expires (RelayConfig.BlobTTL).
	BlobBytesPerPeer int64
	BlobBytesPerIP   int64
	BlobBytes        int64
	Blobs            int
}

// DefaultQuotas suit a small public relay: at most 10,000 topics (1,024
// per IP address, 64 per peer) of 256 MiB each and 8 GiB in all, 1 GiB of mail (64 MiB per
// recipient, 2 MiB of it per sender, 16 MiB per sender in all, items of at
// most 1 MiB, 64 MiB per IP address and hour), 1 MiB of KeyPackages per user, of which 16
// one-time packages a day are handed out (4 to one IP address), and files
// of up to 256 MiB, 1 GiB per peer, 2 GiB per IP address, 16 GiB and
// 65,536 files in all.
func DefaultQuotas() Quotas {
	return Quotas{
		Topics:                  10000,
		TopicsPerPeer:           64,
		TopicsPerIP:             1024,
		NewPeerLease:            time.Hour,
		TopicBytes:              256 << 20,
		TopicLogBytes:           8 << 30,
		MailboxItems:            256,
		MailboxBytes:            64 << 20,
		MailboxItemsPerSender:   32,
		MailboxBytesPerSender:   2 << 20,
		MaxMailItem:             1 << 20,
		MailItemsPerSender:      256,
		MailBytesPerSender:      16 << 20,
		MailItems:               1 << 16,
		MailBytes:               1 << 30,
		DepositBytesPerIP:       RateLimit{Rate: float64(64<<20) / 3600, Burst: 64 << 20},
		KeyPackages:             256,
		KeyPackageBytes:         1 << 20,
		KeyPackageHandouts:      RateLimit{Rate: 16.0 / 86400, Burst: 16},
		KeyPackageHandoutsPerIP: RateLimit{Rate: 4.0 / 86400, Burst: 4},
		RequestRate:             RateLimit{Rate: 10, Burst: 100},
		MaxBlob:                 256 << 20,
		BlobBytesPerPeer:        1 << 30,
		BlobBytesPerIP:          2 << 30,
		BlobBytes:               16 << 30,
		Blobs:                   1 << 16,
	}
}

// WithDefaults returns q with zero (or negative) fields set to
// DefaultQuotas.
func (q Quotas) WithDefaults() Quotas {
	dq := DefaultQuotas()
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defRate := func(v *RateLimit, d RateLimit) {
		if v.Rate <= 0 {
			*v = d
		}
	}
	defInt(&q.Topics, dq.Topics)
	defInt(&q.TopicsPerPeer, dq.TopicsPerPeer)
	defInt(&q.TopicsPerIP, dq.TopicsPerIP)
	if q.NewPeerLease <= 0 {
		q.NewPeerLease = dq.NewPeerLease
	}
	defInt64(&q.TopicBytes, dq.TopicBytes)
	defInt64(&q.TopicLogBytes, dq.TopicLogBytes)
	defInt(&q.MailboxItems, dq.MailboxItems)
	defInt64(&q.MailboxBytes, dq.MailboxBytes)
	defInt(&q.MailboxItemsPerSender, dq.MailboxItemsPerSender)
	defInt64(&q.MailboxBytesPerSender, dq.MailboxBytesPerSender)
	defInt(&q.MaxMailItem, dq.MaxMailItem)
	defInt(&q.MailItemsPerSender, dq.MailItemsPerSender)
	defInt64(&q.MailBytesPerSender, dq.MailBytesPerSender)
	defInt(&q.MailItems, dq.MailItems)
	defInt64(&q.MailBytes, dq.MailBytes)
	defRate(&q.DepositBytesPerIP, dq.DepositBytesPerIP)
	defInt(&q.KeyPackages, dq.KeyPackages)
	defInt64(&q.KeyPackageBytes, dq.KeyPackageBytes)
	defRate(&q.KeyPackageHandouts, dq.KeyPackageHandouts)
	defRate(&q.KeyPackageHandoutsPerIP, dq.KeyPackageHandoutsPerIP)
	defRate(&q.RequestRate, dq.RequestRate)
	defInt64(&q.MaxBlob, dq.MaxBlob)
	defInt64(&q.BlobBytesPerPeer, dq.BlobBytesPerPeer)
	defInt64(&q.BlobBytesPerIP, dq.BlobBytesPerIP)
	defInt64(&q.BlobBytes, dq.BlobBytes)
	defInt(&q.Blobs, dq.Blobs)
	return q
}
