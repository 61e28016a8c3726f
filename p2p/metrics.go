package p2p

import (
	"errors"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are canopy's own Prometheus metrics. go-libp2p's metrics (swarm,
// identify, relay service, resource manager, autonat, holepunch, eventbus)
// are registered with the same registerer by libp2p itself. Labels never
// carry topic names or peer ids: their cardinality would be unbounded. A nil
// *metrics records nothing.
type metrics struct {
	gossip         *prometheus.CounterVec // result, reason
	duplicates     prometheus.Counter
	published      prometheus.Counter
	direct         *prometheus.CounterVec // direction, result
	requests       *prometheus.CounterVec // protocol, code
	requestSeconds *prometheus.HistogramVec
	topics         prometheus.Gauge

	relayTopics  prometheus.Gauge
	relayAppends *prometheus.CounterVec // result
	relayMail    *prometheus.CounterVec // op
	relayKPs     *prometheus.CounterVec // kind
	relayQuota   *prometheus.CounterVec // quota

	relayBlobBytes prometheus.Gauge
	relayBlobFiles prometheus.Gauge
	relayBlobs     *prometheus.CounterVec // op
}

const metricsNS = "canopy_p2p"

func newMetrics(r prometheus.Registerer) *metrics {
	if r == nil {
		return nil
	}
	m := &metrics{
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "gossip_validated_total",
			Help: "Gossip frames validated, by result (accept, reject, ignore) and reason.",
		}, []string{"result", "reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "gossip_duplicates_total",
			Help: "Gossip frames received again after their first copy (gossipsub forwards a frame once per mesh neighbour, so a few per frame are normal).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "published_total",
			Help: "Frames published on group topics.",
		}),
		direct: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "direct_deliveries_total",
			Help: "Topic frames delivered directly to late-joining peers, by direction and result.",
		}, []string{"direction", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "stream_requests_total",
			Help: "Inbound stream protocol requests, by protocol and response code.",
		}, []string{"protocol", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNS, Name: "stream_request_seconds",
			Help:    "Time to serve inbound stream protocol requests.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"protocol"}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNS, Name: "topics",
			Help: "Group topics joined.",
		}),
		relayTopics: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNS, Name: "relay_kept_topics",
			Help: "Topics the relay keeps for its members.",
		}),
		relayAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "relay_log_appends_total",
			Help: "Frames the relay stored in topic logs, by result.",
		}, []string{"result"}),
		relayMail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "relay_mailbox_total",
			Help: "Relay mailbox operations (deposit, deliver, ack), counted per item.",
		}, []string{"op"}),
		relayKPs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "relay_keypackages_total",
			Help: "KeyPackages stored and handed out by the relay, by kind.",
		}, []string{"kind"}),
		relayQuota: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "relay_quota_rejections_total",
			Help: "Requests the relay refused because a per-peer quota was reached.",
		}, []string{"quota"}),
		relayBlobBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNS, Name: "relay_blob_bytes",
			Help: "File ciphertext bytes the relay holds or has reserved for running uploads.",
		}),
		relayBlobFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNS, Name: "relay_blob_files",
			Help: "Files the relay holds, complete or being uploaded.",
		}),
		relayBlobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "relay_blob_total",
			Help: "Relay file storage: bytes uploaded (uploaded), files completed (stored_files), range requests served (served_requests) and expired (expired_files).",
		}, []string{"op"}),
	}
	m.gossip = register(r, m.gossip)
	m.duplicates = register(r, m.duplicates)
	m.published = register(r, m.published)
	m.direct = register(r, m.direct)
	m.requests = register(r, m.requests)
	m.requestSeconds = register(r, m.requestSeconds)
	m.topics = register(r, m.topics)
	m.relayTopics = register(r, m.relayTopics)
	m.relayAppends = register(r, m.relayAppends)
	m.relayMail = register(r, m.relayMail)
	m.relayKPs = register(r, m.relayKPs)
	m.relayQuota = register(r, m.relayQuota)
	m.relayBlobBytes = register(r, m.relayBlobBytes)
	m.relayBlobFiles = register(r, m.relayBlobFiles)
	m.relayBlobs = register(r, m.relayBlobs)
	return m
}

// register registers c, or returns the collector already registered under
// the same descriptor (several nodes in one process share a registry).
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func (m *metrics) gossipResult(result ValidationResult, reason string) {
	if m != nil {
		m.gossip.WithLabelValues(result.String(), reason).Inc()
	}
}

func (m *metrics) duplicate() {
	if m != nil {
		m.duplicates.Inc()
	}
}

func (m *metrics) droppedRPC(frames int) {
	if m != nil {
		m.gossip.WithLabelValues("dropped", "send_queue_full").Add(float64(frames))
	}
}

func (m *metrics) publish() {
	if m != nil {
		m.published.Inc()
	}
}

func (m *metrics) directDelivery(direction, result string) {
	if m != nil {
		m.direct.WithLabelValues(direction, result).Inc()
	}
}

func (m *metrics) request(p protocol.ID, code Code, d time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(string(p), code.String()).Inc()
		m.requestSeconds.WithLabelValues(string(p)).Observe(d.Seconds())
	}
}

func (m *metrics) topicCount(delta float64) {
	if m != nil {
		m.topics.Add(delta)
	}
}

func (m *metrics) keptTopics(n int) {
	if m != nil {
		m.relayTopics.Set(float64(n))
	}
}

func (m *metrics) logAppend(result string) {
	if m != nil {
		m.relayAppends.WithLabelValues(result).Inc()
	}
}

func (m *metrics) mail(op string, n int) {
	if m != nil && n > 0 {
		m.relayMail.WithLabelValues(op).Add(float64(n))
	}
}

func (m *metrics) keyPackage(kind string, n int) {
	if m != nil && n > 0 {
		m.relayKPs.WithLabelValues(kind).Add(float64(n))
	}
}

func (m *metrics) quota(name string) {
	if m != nil {
		m.relayQuota.WithLabelValues(name).Inc()
	}
}

func (m *metrics) blobBytes(op string, n int64) {
	if m != nil && n > 0 {
		m.relayBlobs.WithLabelValues(op).Add(float64(n))
	}
}

// MetricsHandler serves the metrics of g in the Prometheus text format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
