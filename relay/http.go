package relay

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// serveHTTP serves /metrics (the relay's registry in the Prometheus text
// format) and /healthz (p2p.RelayHealth as JSON, 503 when not OK) on the
// metrics listener until Close.
func (r *Relay) serveHTTP() {
	svc := r.p2p
	mux := http.NewServeMux()
	mux.Handle("/metrics", svc.MetricsHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, req *http.Request) {
		h := svc.Health(req.Context())
		w.Header().Set("Content-Type", "application/json")
		if !h.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	srv, ln := r.srv, r.metrics
	go func() { r.srvErr <- srv.Serve(ln) }()
	r.log.Info("serving metrics and health", "addr", ln.Addr().String())
}
