package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/store"
)

// canopy id: print the profile's contact card, as text and as the compact
// string others paste into /invite. A new profile is created if needed.
// While canopy runs with the profile (which locks it), the card the running
// engine wrote (with its current addresses) is printed instead.

func runID(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("canopy id", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf profileFlags
	pf.register(fs, false)
	compact := fs.Bool("compact", false, "print only the compact card")
	newKey := fs.Bool("new-key", false, "replace the profile's signature key (after a suspected compromise; contacts are warned and must verify again)")
	if err := parseFlags(fs, args, stderr, "Usage: canopy id [flags]\n\nPrints this profile's contact card (peer id, addresses, fingerprint) as text and as a compact string to paste."); err != nil {
		return err
	}
	dir, err := pf.dir()
	if err != nil {
		return err
	}
	pass, err := pf.passphrase()
	if err != nil {
		return err
	}
	var opts []store.Option
	if pass != nil {
		opts = append(opts, store.WithPassphrase(pass))
	}
	ctx := context.Background()
	last := readCardFile(dir)
	db, err := store.Open(ctx, dir, opts...)
	if err != nil {
		if last != nil && (errors.Is(err, store.ErrProfileInUse) || errors.Is(err, store.ErrPassphraseRequired)) {
			printCard(stdout, last, *compact)
			return nil
		}
		return explainOpenError(err, pf.profile)
	}
	defer db.Close()
	card, err := chat.ProfileCard(ctx, db, pf.nick)
	if err != nil {
		return err
	}
	if *newKey {
		if card, err = chat.RotateSignatureKey(ctx, db); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "canopy: new signature key; your contacts will see a key-change warning and should verify you again")
	}
	if last != nil && last.PeerID == card.PeerID {
		// The addresses of the last run (a hint: ports may change).
		card.Addrs = last.Addrs
	}
	printCard(stdout, card, *compact)
	return nil
}

func printCard(w io.Writer, c *chat.Card, compact bool) {
	if !compact {
		fmt.Fprint(w, c.Text())
		fmt.Fprintln(w, "\nPaste this card into /invite:")
	}
	fmt.Fprintln(w, c.String())
}

// readCardFile reads the card a running (or the last) engine wrote.
func readCardFile(dir string) *chat.Card {
	b, err := os.ReadFile(filepath.Join(dir, chat.CardFileName))
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	c, err := chat.ParseCard(lines[len(lines)-1])
	if err != nil {
		return nil
	}
	return c
}
