package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/store"
	"github.com/canopy-chat/canopy/tui"
	"github.com/charmbracelet/x/term"
)

// canopy [chat]: the messenger in the terminal. On first run (no profile
// yet) tui.Setup asks for a nickname and an optional passphrase; a profile
// protected by a passphrase asks for it (without echo) when none is given
// by --passphrase-file or $CANOPY_PASSPHRASE. The engine logs to
// canopy.log in the profile directory: the TUI owns the terminal.

func runChat(args []string, stdout, stderr io.Writer) error {
	return chatMain(args, os.Stdin, stdout, stderr)
}

func chatMain(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("canopy chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf profileFlags
	pf.register(fs, true)
	noMouse := fs.Bool("no-mouse", false, "leave the mouse to the terminal (native text selection)")
	notify := fs.String("notify", "off", "desktop notifications for mentions, as terminal escape sequences: off, osc9 or osc777")
	if err := parseFlags(fs, args, stderr, "Usage: canopy [chat] [flags]\n\nOpens the messenger. The first run creates the profile."); err != nil {
		return err
	}
	desktop, ok := tui.ParseDesktopNotify(*notify)
	if !ok {
		return fmt.Errorf("--notify %q: want off, osc9 or osc777", *notify)
	}
	cfg, err := pf.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interactive := term.IsTerminal(stdin.Fd())
	if _, err := os.Stat(filepath.Join(cfg.ProfileDir, "canopy.db")); errors.Is(err, os.ErrNotExist) && interactive {
		nick, pass, err := tui.Setup(ctx, firstRunNick(pf.nick, pf.profile, os.Getenv, accountName), stdin, stdout)
		if err != nil {
			return err
		}
		cfg.Nick = nick
		if pass != "" && cfg.Passphrase == nil {
			cfg.Passphrase = []byte(pass)
		}
	}
	e, err := chat.Open(ctx, cfg)
	if errors.Is(err, store.ErrPassphraseRequired) && interactive {
		fmt.Fprintf(stdout, "Passphrase for profile %q: ", pf.profile)
		pass, rerr := term.ReadPassword(stdin.Fd())
		fmt.Fprintln(stdout)
		if rerr != nil {
			return rerr
		}
		cfg.Passphrase = pass
		e, err = chat.Open(ctx, cfg)
	}
	if err != nil {
		return explainOpenError(err, pf.profile)
	}
	var opts []tui.Option
	if *noMouse {
		opts = append(opts, tui.WithoutMouse())
	}
	if desktop != tui.NotifyOff {
		opts = append(opts, tui.WithDesktopNotify(desktop))
	}
	opts = append(opts, tui.WithInput(stdin), tui.WithOutput(stdout))
	rerr := tui.Run(ctx, e, opts...)
	cerr := e.Close()
	if errors.Is(rerr, context.Canceled) {
		rerr = nil
	}
	return errors.Join(rerr, cerr)
}

// firstRunNick is the nickname the first-run screen offers: --nick; else
// the profile's name when it is not the default one (--profile bob offers
// "bob": a second profile is usually a second person or role); else the
// login name from $USER, $LOGNAME or the account database (empty in some
// containers and service shells). The user can change it before accepting.
func firstRunNick(flagNick, profile string, getenv func(string) string, account func() string) string {
	if flagNick != "" {
		return flagNick
	}
	if profile != "" && profile != store.DefaultProfile {
		return profile
	}
	for _, v := range []string{"USER", "LOGNAME"} {
		if n := strings.TrimSpace(getenv(v)); n != "" {
			return n
		}
	}
	return account()
}

// accountName is the current account's login name, or "".
func accountName() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}

// Flags shared by the subcommands that open a profile (chat, headless, id).

// listFlag is a repeatable, comma-separated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

type profileFlags struct {
	profile   string
	data      string
	nick      string
	passFile  string
	listen    listFlag
	bootstrap listFlag
	noMDNS    bool
}

// register adds the profile flags; network adds the flags of subcommands
// that start the p2p node.
func (p *profileFlags) register(fs *flag.FlagSet, network bool) {
	fs.StringVar(&p.profile, "profile", store.DefaultProfile, "profile `name`: run several identities on one machine")
	fs.StringVar(&p.data, "data", "", "data `directory` (default $XDG_DATA_HOME, or ~/.local/share); the profile lives in DIR/canopy/NAME")
	fs.StringVar(&p.nick, "nick", "", "nickname of a new profile (default: the profile's name, or your login name)")
	fs.StringVar(&p.passFile, "passphrase-file", "", "read the profile's passphrase from `file` (or set CANOPY_PASSPHRASE); none: the profile uses a key file")
	if network {
		fs.Var(&p.listen, "listen", "libp2p `multiaddr`s to listen on, comma separated or repeated (default: TCP and QUIC on all interfaces; ports left at 0 are chosen on the first start and kept by the profile)")
		fs.Var(&p.bootstrap, "bootstrap", "full `multiaddr`s (…/p2p/ID) of relays or peers to meet through, comma separated or repeated")
		fs.BoolVar(&p.noMDNS, "no-mdns", false, "do not look for peers on the LAN (mDNS)")
	}
}

func (p *profileFlags) dir() (string, error) {
	if err := store.ValidateProfileName(p.profile); err != nil {
		return "", err
	}
	dir, err := store.ProfileDir(p.data, p.profile)
	if err != nil {
		return "", err
	}
	if err := notRelayDir(dir); err != nil {
		return "", fmt.Errorf("profile %q: %w", p.profile, err)
	}
	return dir, nil
}

// passphrase returns the passphrase from --passphrase-file or
// $CANOPY_PASSPHRASE (nil: none).
func (p *profileFlags) passphrase() ([]byte, error) {
	if p.passFile != "" {
		b, err := os.ReadFile(p.passFile)
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		pass := strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return nil, errors.New("the passphrase file is empty")
		}
		return []byte(pass), nil
	}
	if s := os.Getenv("CANOPY_PASSPHRASE"); s != "" {
		return []byte(s), nil
	}
	return nil, nil
}

// config builds the engine configuration.
func (p *profileFlags) config() (chat.Config, error) {
	dir, err := p.dir()
	if err != nil {
		return chat.Config{}, err
	}
	pass, err := p.passphrase()
	if err != nil {
		return chat.Config{}, err
	}
	cfg := chat.Config{
		ProfileDir:  dir,
		Nick:        p.nick,
		Passphrase:  pass,
		ListenAddrs: p.listen,
		Bootstrap:   p.bootstrap,
		MDNS:        !p.noMDNS,
	}
	// Before the first-run questions and before anything is written.
	if err := cfg.CheckNetwork(); err != nil {
		return chat.Config{}, err
	}
	return cfg, nil
}

// explainOpenError turns store errors into advice.
func explainOpenError(err error, profile string) error {
	switch {
	case errors.Is(err, store.ErrProfileInUse):
		return fmt.Errorf("profile %q is open in another canopy; use --profile NAME for a second identity", profile)
	case errors.Is(err, store.ErrPassphraseRequired):
		return fmt.Errorf("profile %q is protected by a passphrase: use --passphrase-file FILE or set CANOPY_PASSPHRASE", profile)
	case errors.Is(err, store.ErrWrongPassphrase):
		return fmt.Errorf("wrong passphrase for profile %q", profile)
	}
	return err
}
