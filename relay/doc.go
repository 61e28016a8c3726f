// Package relay runs a canopy relay: a headless peer anyone can operate
// that helps members meet and catch up, and never holds group keys. It is
// what `canopy relay` runs; cmd_relay.go only turns flags into a Config.
//
// # What a relay does
//
// The service itself is p2p.Relay: a DHT server and bootstrap peer, a
// circuit relay v2 service for members behind NAT, topic keeping (it joins
// the topics members lease to it and stores their ciphertext frames for
// catch-up sync), mailboxes holding Welcomes for offline invitees, a
// cache of KeyPackages, and file ciphertext members upload so that files
// stay available while their senders are offline (Config.BlobTTL,
// Config.NoBlobs; the relay never has a file's key). This package gives it a home: a SQLite database
// and an identity key in one data directory, structured logs, and an HTTP
// server for /metrics (Prometheus text) and /healthz (JSON, 503 when
// unhealthy).
//
// # Running one
//
//	cfg := relay.DefaultConfig()       // port 4001 on every interface, default quotas
//	cfg.DataDir = "/var/lib/canopy-relay"
//	cfg.Announce = []string{"/ip4/203.0.113.7/tcp/4001"} // behind port forwarding
//	cfg.Logger, cfg.Out = slog.Default(), os.Stdout
//	err := relay.Run(ctx, cfg)         // until ctx ends
//
// Run prints the relay's peer id, its addresses and the --bootstrap
// argument to hand to peers (public addresses if it has any, else LAN,
// else loopback, and says which). Start returns a running *Relay instead,
// for tests and embedding: ID, Addrs and MetricsAddr tell where it is.
// Config.Validate checks addresses and the data directory setting without
// writing anything; a bad field is a *ConfigError naming it.
//
// # The data directory
//
// DataDir holds the store (canopy.db with its -wal/-shm files, lock, and
// key, the key file that seals it: relays have no passphrase) and
// IdentityFile, the libp2p key that fixes the relay's peer id. The store's
// lock keeps two relays off one directory (store.ErrProfileInUse). What
// the relay stores survives restarts: the topic log, the members' leases
// (a restarted relay rejoins every topic with an unexpired lease),
// mailboxes and KeyPackages, including which one-time KeyPackages were
// handed out, so a re-upload cannot make one be handed out twice.
// Uploaded files live in blobs/ (one file per id; "<id>.part" while an
// upload runs); complete ones survive restarts and count against the total
// file quota until they expire, partial ones are deleted at start and
// their uploaders start over.
//
// # Storage and quotas
//
// There is one relay storage contract: p2p's TopicLog, LeaseStore,
// Mailbox and KeyPackageCache, checked by p2ptest against every
// implementation (p2p's in-memory ones and the SQLite one here). The
// SQLite implementation (sqlstore.go) maps types onto the store's relay
// tables and nothing else: ids are content hashes on both sides, a lease
// ending at now is over on both, and quotas travel with every call. Quota
// policy is p2p.Quotas: zero fields take p2p.DefaultQuotas through
// Quotas.WithDefaults, and p2p.DefaultRelayConfig holds the other
// defaults; neither this package nor the store keeps its own.
package relay
