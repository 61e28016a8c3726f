package p2p_test

import (
	"testing"

	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/p2p/p2ptest"
)

func TestMemoryTopicLog(t *testing.T)    { p2ptest.TopicLog(t, p2p.NewMemoryTopicLog()) }
func TestMemoryMailbox(t *testing.T)     { p2ptest.Mailbox(t, p2p.NewMemoryMailbox()) }
func TestMemoryKeyPackages(t *testing.T) { p2ptest.KeyPackageCache(t, p2p.NewMemoryKeyPackageCache()) }
func TestMemoryLastResortRefresh(t *testing.T) {
	p2ptest.LastResortRefresh(t, p2p.NewMemoryKeyPackageCache())
}
func TestMemoryLeases(t *testing.T) { p2ptest.LeaseStore(t, p2p.NewMemoryLeaseStore()) }
func TestMemoryConcurrent(t *testing.T) {
	p2ptest.Concurrent(t, p2p.NewMemoryMailbox(), p2p.NewMemoryKeyPackageCache())
}
