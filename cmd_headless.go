package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// canopy headless: the chat engine without a screen, for bots, scripts and
// tests. Input lines on stdin are what a user would type in the TUI: slash
// commands (see /help) or text sent to the selected group. Headless adds
// one command, /switch NAME|ID, which selects the group later lines apply
// to (/create and /accept select their group too). Output is one JSON
// object per line on stdout; the schema is documented in
// headless_json.go (and README.md). End of input quits, like /quit.

func runHeadless(args []string, stdout, stderr io.Writer) error {
	return headless(args, os.Stdin, stdout, stderr)
}

// syncWriter writes whole lines from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) line(b []byte, err error) {
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(append(b, '\n'))
}

func headless(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("canopy headless", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf profileFlags
	pf.register(fs, true)
	start := fs.String("group", "", "select the group with this `id or name` at start")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on a command after this long")
	if err := parseFlags(fs, args, stderr, "Usage: canopy headless [flags]\n\nRuns the chat engine without a screen: commands on stdin, one JSON event per line on stdout."); err != nil {
		return err
	}
	cfg, err := pf.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := chat.Open(ctx, cfg)
	if err != nil {
		return explainOpenError(err, pf.profile)
	}
	out := &syncWriter{w: stdout}
	out.line(readyJSON(e))

	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for ev := range e.Events() {
			out.line(eventJSON(ev))
		}
	}()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()

	var cur chat.GroupID
	if *start != "" {
		cur, err = findGroup(e, *start)
		if err != nil {
			fmt.Fprintln(stderr, "canopy headless:", err)
		}
	}
	n := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			n++
			trimmed := strings.TrimSpace(line)
			if name, arg, _ := strings.Cut(trimmed, " "); name == "/switch" {
				g, err := findGroup(e, strings.TrimSpace(arg))
				if err == nil {
					cur = g
				}
				out.line(resultJSON(n, line, chat.Result{Text: "selected " + string(g), Group: g}, err))
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, *timeout)
			r, err := e.Run(cctx, cur, line)
			cancel()
			if errors.Is(err, chat.ErrQuit) {
				out.line(resultJSON(n, line, chat.Result{Text: "bye"}, nil))
				break loop
			}
			if err == nil && r.Group != "" {
				cur = r.Group
			}
			out.line(resultJSON(n, line, r, err))
		}
	}
	cerr := e.Close()
	<-evDone
	out.line([]byte(`{"type":"bye"}`), nil)
	return cerr
}

// findGroup resolves a group id or name.
func findGroup(e *chat.Engine, s string) (chat.GroupID, error) {
	if s == "" {
		return "", errors.New("usage: /switch NAME|ID")
	}
	var hit chat.GroupID
	for _, g := range e.Groups() {
		if string(g.ID) == s {
			return g.ID, nil
		}
		if strings.EqualFold(g.Name, s) || strings.HasPrefix(string(g.ID), s) {
			if hit != "" {
				return "", fmt.Errorf("%q matches several groups: use the id", s)
			}
			hit = g.ID
		}
	}
	if hit == "" {
		return "", fmt.Errorf("no group %q", s)
	}
	return hit, nil
}
