package chat

// The commands of file transfers (/send, /transfers, /open): choosing a
// transfer, listing, pausing, resuming and cancelling, and handing a
// received file to the system's opener.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/canopy-chat/canopy/blob"
)

// find picks a transfer by its number in /transfers or a prefix of its
// message or file id.
func (x *transfers) find(arg string) (*xfer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n, err := strconv.Atoi(arg); err == nil {
		if n < 1 || n > len(x.list) {
			return nil, fmt.Errorf("no transfer %d (see /transfers)", n)
		}
		return x.list[n-1], nil
	}
	arg = strings.TrimPrefix(strings.ToLower(arg), "#")
	var found *xfer
	for _, t := range x.list {
		if arg != "" && (strings.HasPrefix(string(t.t.Message), arg) || strings.HasPrefix(t.t.File.ID, arg)) {
			if found != nil {
				return nil, fmt.Errorf("%q matches more than one transfer", arg)
			}
			found = t
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no transfer %q (see /transfers)", arg)
	}
	return found, nil
}

// transfersCmd is /transfers [get|pause|resume|cancel N | limit SIZE|off].
func (e *Engine) transfersCmd(gid GroupID, args []string) (Result, error) {
	x := e.transfers()
	if x == nil {
		return Result{}, errors.New("file transfer needs a profile directory")
	}
	if len(args) == 0 {
		return Result{Text: x.listText()}, nil
	}
	op := strings.ToLower(args[0])
	if op == "limit" {
		if gid == "" {
			return Result{}, errors.New("no group selected")
		}
		if len(args) != 2 {
			return Result{Text: fmt.Sprintf("files up to %s are fetched without asking in this group", fmtLimit(x.autoLimit(gid)))}, nil
		}
		l := int64(-1)
		if !strings.EqualFold(args[1], "off") {
			var err error
			if l, err = parseSize(args[1]); err != nil {
				return Result{}, err
			}
		}
		if err := x.setLimit(gid, l); err != nil {
			return Result{}, err
		}
		return Result{Text: fmt.Sprintf("files up to %s are now fetched without asking in this group", fmtLimit(l))}, nil
	}
	if len(args) != 2 {
		return Result{}, errors.New("usage: /transfers [get|pause|resume|cancel N] [limit SIZE|off]")
	}
	t, err := x.find(args[1])
	if err != nil {
		return Result{}, err
	}
	x.mu.Lock()
	st, own, cancel, path := t.t.Status, t.t.Own, t.cancel, t.t.Path
	x.mu.Unlock()
	name := t.ann.Name
	switch op {
	case "get", "resume":
		switch {
		case own:
			return Result{}, errors.New("that is your own file")
		case st == TransferDone:
			return Result{Text: name + " is already saved to " + path}, nil
		case cancel != nil:
			return Result{Text: name + " is already being fetched"}, nil
		}
		x.start(t)
		return Result{Text: "fetching " + name}, nil
	case "pause":
		if cancel == nil {
			return Result{}, fmt.Errorf("%s is not being fetched", name)
		}
		x.setStatus(t, TransferPaused, "")
		cancel()
		return Result{Text: "paused " + name + " (/transfers resume continues where it stopped)"}, nil
	case "cancel":
		if cancel != nil {
			cancel()
		}
		if own {
			// Stop sharing: members who have it still serve it.
			_ = x.store.Remove(t.id)
		} else if st != TransferDone {
			_ = x.store.RemovePartial(t.id)
		}
		x.mu.Lock()
		t.t.Done = 0
		x.mu.Unlock()
		x.setStatus(t, TransferCanceled, "")
		return Result{Text: "canceled " + name}, nil
	}
	return Result{}, errors.New("usage: /transfers [get|pause|resume|cancel N] [limit SIZE|off]")
}

func fmtLimit(l int64) string {
	if l < 0 {
		return "none (off)"
	}
	return FormatBytes(l)
}

func (x *transfers) listText() string {
	list := x.List()
	if len(list) == 0 {
		return "no transfers"
	}
	var b strings.Builder
	for i, t := range list {
		if i > 0 {
			b.WriteByte('\n')
		}
		pct := 100
		if t.Total > 0 {
			pct = int(t.Done * 100 / t.Total)
		}
		fmt.Fprintf(&b, "%d. %-8s %3d%%  %s (%s)", i+1, t.Status, pct, t.File.Name, FormatBytes(t.File.Size))
		if t.Path != "" {
			fmt.Fprintf(&b, " → %s", t.Path)
		}
		if t.Err != "" {
			fmt.Fprintf(&b, ": %s", t.Err)
		}
	}
	return b.String()
}

// openCmd is /open N: hand a received file to the system's opener
// ($CANOPY_OPENER, else xdg-open or open).
func (e *Engine) openCmd(args []string) (Result, error) {
	x := e.transfers()
	if x == nil {
		return Result{}, errors.New("file transfer needs a profile directory")
	}
	if len(args) != 1 {
		return Result{}, errors.New("usage: /open N (a number from /transfers)")
	}
	t, err := x.find(args[0])
	if err != nil {
		return Result{}, err
	}
	x.mu.Lock()
	path, st := t.t.Path, t.t.Status
	x.mu.Unlock()
	if st != TransferDone || path == "" {
		return Result{}, fmt.Errorf("%s is not received yet (%s)", t.ann.Name, st)
	}
	opener := os.Getenv("CANOPY_OPENER")
	if opener == "" {
		opener = "xdg-open"
		if runtime.GOOS == "darwin" {
			opener = "open"
		}
	}
	cmd := exec.Command(opener, path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("opening %s: %w", path, err)
	}
	go func() { _ = cmd.Wait() }()
	return Result{Text: "opened " + path}, nil
}

// openTransfers sets up file transfer for a profile on disk.
func (e *Engine) openTransfers() error {
	if e.cfg.ProfileDir == "" {
		return nil
	}
	dl := e.cfg.DownloadDir
	if dl == "" {
		dl = filepath.Join(e.cfg.ProfileDir, "downloads")
	}
	x, err := newTransfers(e, filepath.Join(e.cfg.ProfileDir, "blobs"), dl)
	if err != nil {
		return err
	}
	e.xfers = x
	return nil
}

// transfers is the engine's transfer manager, nil without a profile
// directory.
func (e *Engine) transfers() *transfers { return e.xfers }

// Handlers of the registry (registry.go).

func (e *Engine) cmdSend(ctx context.Context, in cmdInput) (Result, error) {
	if in.rest == "" {
		return Result{}, in.usage()
	}
	return e.sendFile(ctx, in.g, in.rest)
}

func (e *Engine) cmdTransfers(_ context.Context, in cmdInput) (Result, error) {
	return e.transfersCmd(in.gid, in.args)
}

func (e *Engine) cmdOpen(_ context.Context, in cmdInput) (Result, error) {
	return e.openCmd(in.args)
}

// FormatBytes shows a size in decimal units ("1.2 MB"), as the engine's
// texts and the front ends do.
func FormatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// parseSize reads "25M", "1.5G", "300k", "4096" (decimal units, as shown).
func parseSize(in string) (int64, error) {
	s := in
	s = strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult, s = 1e3, s[:n-1]
		case 'M':
			mult, s = 1e6, s[:n-1]
		case 'G':
			mult, s = 1e9, s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 25M, 1G)", in)
	}
	n := f * float64(mult)
	if n > blob.MaxSize {
		n = blob.MaxSize // nothing larger can be announced
	}
	return int64(n), nil
}
