package main

import (
	"errors"
	"fmt"

	"github.com/canopy-chat/canopy/mls"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors the server returns keep their causes: every layer wraps the one
// below with %w, so the message an RPC fails with (and the log line, see
// logRPC) reads from the operation down to the decoder that refused the
// bytes, and tests in this package can match the sentinels of package mls
// with errors.Is.
//
// The gRPC status code rides along in an rpcError at the bottom of the
// layers the server adds; grpc-go finds it with errors.As and sends the
// whole chain's text as the status message.

// rpcError gives err a gRPC status code.
type rpcError struct {
	code codes.Code
	err  error
}

func (e *rpcError) Error() string { return e.err.Error() }
func (e *rpcError) Unwrap() error { return e.err }

// GRPCStatus is what status.FromError (and so the gRPC server) uses; for
// an rpcError wrapped in further layers, grpc-go replaces the message with
// the outermost error's text.
func (e *rpcError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

// errorf returns an error with a status code; format may wrap causes
// with %w.
func errorf(code codes.Code, format string, args ...any) error {
	return &rpcError{code: code, err: fmt.Errorf(format, args...)}
}

func invalidArg(format string, args ...any) error {
	return errorf(codes.InvalidArgument, format, args...)
}

// mlsError prefixes err with the operation op. An error that already has
// a status code keeps it; one from package mls gets the code of its
// sentinel (InvalidArgument unless listed).
func mlsError(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *rpcError
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %w", op, err)
	}
	code := codes.InvalidArgument
	var unsupported *mls.UnsupportedCipherSuiteError
	switch {
	case errors.As(err, &unsupported):
		code = codes.Unimplemented
	case errors.Is(err, mls.ErrGroupClosed), errors.Is(err, mls.ErrNotPending), errors.Is(err, mls.ErrMissingPSK),
		errors.Is(err, mls.ErrWrongEpoch):
		code = codes.FailedPrecondition
	}
	return errorf(code, "%s: %w", op, err)
}
