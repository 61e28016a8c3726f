package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/canopy-chat/canopy/mls"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := serve(ctx, os.Args[1:], os.Stderr, nil)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// paddingFlag is the value of -padding.
type paddingFlag struct {
	name   string
	policy mls.PaddingPolicy
}

// paddings are the values -padding accepts.
var paddings = map[string]mls.PaddingPolicy{
	// canopy's own policy, the zero PaddingPolicy: proposals and commits
	// padded with Padmé, application data to 256-byte blocks.
	"padme": {},
	// No padding at all, for peers that refuse padded PrivateMessages.
	"none": {Mode: mls.PadNone},
}

func (p *paddingFlag) String() string { return p.name }

func (p *paddingFlag) Set(v string) error {
	policy, ok := paddings[v]
	if !ok {
		return fmt.Errorf("unknown padding %q (want padme or none)", v)
	}
	p.name, p.policy = v, policy
	return nil
}

// options is the parsed command line.
type options struct {
	host    string
	port    int
	name    string
	padding paddingFlag
	verbose bool
}

func parseFlags(args []string, output io.Writer) (*options, error) {
	o := &options{padding: paddingFlag{name: "padme"}}
	fs := flag.NewFlagSet("interop", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to listen on (use 0.0.0.0 or :: to accept remote runners)")
	fs.IntVar(&o.port, "port", 50051, "TCP port to listen on (0: any free port)")
	fs.StringVar(&o.name, "name", DefaultName, "what the Name RPC answers, to tell instances apart in the runner's results")
	fs.Var(&o.padding, "padding", "PrivateMessage padding: padme (canopy's policy: Padmé on proposals and commits, 256-byte blocks on application data) or none")
	fs.BoolVar(&o.verbose, "v", false, "log every RPC, not only the failed ones")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.port < 0 || o.port > 65535 {
		return nil, &usageError{fmt.Errorf("invalid port %d", o.port)}
	}
	return o, nil
}

// serve runs the command: it serves until ctx is done. It logs to logw; ready, if not nil, is
// called with the listening address once the server accepts connections.
func serve(ctx context.Context, args []string, logw io.Writer, ready func(net.Addr)) error {
	o, err := parseFlags(args, logw)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))

	lis, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		return err
	}
	s := NewServer(nil, WithName(o.name), WithPadding(o.padding.policy), WithLogger(logger))
	gs, errc := s.Serve(lis)
	logger.Info("MLS interop client listening", "name", o.name, "addr", lis.Addr().String(),
		"padding", o.padding.name)
	if ready != nil {
		ready(lis.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		logger.Info("shutting down")
		gs.GracefulStop()
		return nil
	}
}
