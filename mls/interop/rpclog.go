package main

import (
	"context"
	"log/slog"
	"path"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The server's log: one line per failed RPC, always (level WARN), and one
// per successful RPC at level DEBUG (shown with -v). A line names the
// method, the ids the request refers to (state_id, transaction_id, ...),
// the ids the response hands out (as resp.state_id=...), the duration and,
// for a failure, the status code and the whole error chain:
//
//	level=WARN msg="rpc failed" method=ExternalJoin code=InvalidArgument err="external join: mls: invalid group info: malformed external_pub extension: mls: malformed message: 64 trailing bytes after ExternalPub" duration=1.2ms
//
// Request and response bodies are never logged: they carry private keys
// (CreateKeyPackage) and PSK secrets (StorePSK).

// idFields are the protocol's handles to server state.
var idFields = map[protoreflect.Name]bool{
	"state_id":                true,
	"transaction_id":          true,
	"reinit_id":               true,
	"signer_id":               true,
	"state_or_transaction_id": true,
}

// idAttrs returns the state handles set in m, in field order.
func idAttrs(m any) []any {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	var out []any
	fields := pm.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !idFields[fd.Name()] || fd.Kind() != protoreflect.Uint32Kind {
			continue
		}
		out = append(out, slog.Uint64(string(fd.Name()), pm.ProtoReflect().Get(fd).Uint()))
	}
	return out
}

// logRPC is the unary interceptor that writes the log.
func (s *Server) logRPC(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	level, msg := slog.LevelDebug, "rpc"
	if err != nil {
		level, msg = slog.LevelWarn, "rpc failed"
	}
	if !s.log.Enabled(ctx, level) {
		return resp, err
	}
	attrs := append([]any{slog.String("method", path.Base(info.FullMethod))}, idAttrs(req)...)
	if err != nil {
		// The code is the status's; the message is the error's own text,
		// which is the whole chain (every layer wraps with %w).
		attrs = append(attrs, slog.String("code", status.Code(err).String()), slog.String("err", err.Error()))
	} else if ids := idAttrs(resp); len(ids) > 0 {
		attrs = append(attrs, slog.Group("resp", ids...))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	s.log.Log(ctx, level, msg, attrs...)
	return resp, err
}
