// Command canopy is an end-to-end encrypted group messenger for the terminal
// with no server: peers meet over libp2p and protect each group with MLS
// (RFC 9420).
//
//	canopy [chat]   open the messenger (default)
//	canopy relay    run a headless relay peer
//	canopy headless run the engine without a screen (JSON events on stdout)
//	canopy id       print this profile's contact card
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// errUsage is returned for bad command lines; the message has been printed.
var errUsage = errors.New("usage")

// subcommand is one verb of the canopy command line.
type subcommand struct {
	name, summary string
	// run is nil while the subcommand is not built yet.
	run func(args []string, stdout, stderr io.Writer) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"chat", "open the messenger (the default when no subcommand is given)", runChat},
		{"relay", "run a headless relay peer (DHT server, circuit relay, mailboxes, sync)", runRelay},
		{"headless", "run the chat engine without a screen: slash commands on stdin, JSON events on stdout", runHeadless},
		{"id", "print this profile's contact card", runID},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "canopy: end-to-end encrypted group chat for the terminal, with no server.")
	fmt.Fprintln(w, "\nUsage:\n  canopy [subcommand] [flags]\n\nSubcommands:")
	for _, sc := range subcommands() {
		state := ""
		if sc.run == nil {
			state = " (not available yet)"
		}
		fmt.Fprintf(w, "  %-9s %s%s\n", sc.name, sc.summary, state)
	}
	fmt.Fprintln(w, "\nRun 'canopy SUBCOMMAND -help' for a subcommand's flags.")
}

// run is main without the exit: it returns the process status.
func run(args []string, stdout, stderr io.Writer) int {
	if path := os.Getenv("CANOPY_CPUPROFILE"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintln(stderr, "canopy:", err)
			return 1
		}
		defer stop()
	}
	if err := dispatch(args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "canopy:", err)
		}
		return 1
	}
	return 0
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	name := "chat"
	if len(args) > 0 {
		switch a := args[0]; a {
		case "-h", "-help", "--help", "help":
			usage(stdout)
			return nil
		default:
			if len(a) > 0 && a[0] != '-' {
				name, args = a, args[1:]
			}
		}
	}
	for _, sc := range subcommands() {
		if sc.name != name {
			continue
		}
		if sc.run == nil {
			return fmt.Errorf("'%s' is not available yet in this build of canopy (see README.md, Status)", name)
		}
		return sc.run(args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "canopy: unknown subcommand %q\n\n", name)
	usage(stderr)
	return errUsage
}

// parseFlags parses a subcommand's flags with usage as the head of its help
// text. Positional arguments are refused: no subcommand takes any.
// flag.ErrHelp is passed through (exit 0); other errors have been printed.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) error {
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// startCPUProfile writes a CPU profile of this run to path until stop is
// called (CANOPY_CPUPROFILE, for developers: go tool pprof reads it).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
