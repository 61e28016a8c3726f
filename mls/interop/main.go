// Command interop serves canopy's MLS implementation (package mls) over
// the gRPC service MLSClient of the official MLS interop test harness
// (https://github.com/mlswg/mls-implementations, interop/), so that the
// official test runner can drive canopy against other MLS stacks:
//
//	go run ./mls/interop -port 50051
//
// The server logic is in server.go; this file only parses flags and
// listens.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (use 0.0.0.0 or :: to accept remote runners)")
	port := flag.Int("port", 50051, "TCP port to listen on")
	flag.Parse()
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(os.Stderr, "interop: invalid port %d\n", *port)
		os.Exit(2)
	}

	lis, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("interop: %v", err)
	}
	gs, errc := NewServer(nil).Serve(lis)
	log.Printf("interop: %s MLS client listening on %s", clientName, lis.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		log.Fatalf("interop: %v", err)
	case <-ctx.Done():
		log.Printf("interop: shutting down")
		gs.GracefulStop()
	}
}
