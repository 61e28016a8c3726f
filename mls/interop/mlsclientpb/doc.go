// Package mlsclientpb is the Go code generated from the official MLS interop
// protocol (mls_client.proto, service MLSClient). It is committed so that no
// protoc is needed to build; regenerate with `go generate` after installing
// protoc, protoc-gen-go and protoc-gen-go-grpc.
package mlsclientpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Mmls_client.proto=github.com/canopy-chat/canopy/mls/interop/mlsclientpb;mlsclientpb --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mmls_client.proto=github.com/canopy-chat/canopy/mls/interop/mlsclientpb;mlsclientpb mls_client.proto
