package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The command registry: Commands lists every slash command with its help
// line and handler, and Run dispatches a line through it.

// Result is what a command produced: text for the user and, for commands
// that create or join a group, that group.
type Result struct {
	Text  string
	Group GroupID
}

// Execute implements Client.
func (e *Engine) Execute(ctx context.Context, gid GroupID, line string) (string, error) {
	r, err := e.Run(ctx, gid, line)
	return r.Text, err
}

// Run is Execute with a structured result. A line without a leading slash
// (or starting with //, which sends a leading /) is a message to the
// selected group; a command is looked up in the registry (Commands).
func (e *Engine) Run(ctx context.Context, gid GroupID, line string) (Result, error) {
	line = strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(line) == "" {
		return Result{}, nil
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		text := line
		if strings.HasPrefix(line, "//") {
			text = line[1:]
		}
		g, err := e.needGroup(gid)
		if err != nil {
			return Result{}, err
		}
		_, err = e.sendText(ctx, g, text)
		return Result{}, err
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
	rest = strings.TrimSpace(rest)
	cmd := commandByName[strings.ToLower(name)]
	if cmd == nil {
		return Result{}, fmt.Errorf("unknown command /%s (try /help)", name)
	}
	in := cmdInput{cmd: cmd, gid: gid, rest: rest, args: strings.Fields(rest)}
	if cmd.inGroup {
		g, err := e.needGroup(gid)
		if err != nil {
			return Result{}, err
		}
		in.g = g
	}
	return cmd.run(e, ctx, in)
}

// cmdHandler runs one command.
type cmdHandler func(e *Engine, ctx context.Context, in cmdInput) (Result, error)

// cmdInput is what a handler gets: the selected group's id and, for a
// command that runs in a group, the group itself; the text after the
// command's name, trimmed, and that text split into fields.
type cmdInput struct {
	cmd  *Command
	gid  GroupID
	g    *group
	rest string
	args []string
}

// usage is the error for missing or extra arguments.
func (in cmdInput) usage() error {
	return fmt.Errorf("usage: /%s %s", in.cmd.Name, in.cmd.Args)
}

// Commands lists the slash commands every front end accepts (DESIGN.md §7),
// in the order help shows them. Run dispatches through the same entries.
var Commands []Command

// commandByName finds a command by its name or an alias (lower case).
var commandByName map[string]*Command

// The registry is filled in init because the help command's handler reads
// Commands: as a variable initializer it would refer to itself.
func init() {
	Commands = []Command{
		{Name: "create", Args: "NAME [CONTACT…] [--pq]", Summary: "create a group and add contacts in one commit (--pq: post-quantum)", run: (*Engine).cmdCreate},
		{Name: "reinit", Args: "--pq", Summary: "move the group to the post-quantum suite (a new group, same members)", inGroup: true, run: (*Engine).cmdReInit},
		{Name: "invite", Args: "CONTACT|CARD", Summary: "invite a contact (petname, nearby peer or pasted card)", inGroup: true, run: (*Engine).cmdInvite},
		{Name: "dm", Args: "CONTACT|CARD", Summary: "open (or reopen) a direct conversation with a contact", run: (*Engine).cmdDM},
		{Name: "accept", Args: "[INVITATION]", Summary: "accept an invitation", run: (*Engine).cmdAccept},
		{Name: "decline", Args: "[INVITATION]", Summary: "decline an invitation", run: (*Engine).cmdDecline},
		{Name: "kick", Args: "NICK", Summary: "remove a member from the group", inGroup: true, run: (*Engine).cmdKick},
		{Name: "leave", Summary: "leave the group (a member commits your removal)", inGroup: true, run: (*Engine).cmdLeave},
		{Name: "members", Summary: "list members with verification marks", inGroup: true, run: (*Engine).cmdMembers},
		{Name: "verify", Args: "NICK [confirm]", Summary: "show the safety number; confirm after comparing", inGroup: true, run: (*Engine).cmdVerify},
		{Name: "nick", Args: "NAME", Summary: "set your nickname", run: (*Engine).cmdNick},
		{Name: "update", Summary: "rotate your own leaf key (post-compromise security)", inGroup: true, run: (*Engine).cmdUpdate},
		{Name: "edit", Args: "[^N|#ID] TEXT", Summary: "replace the text of your last (or Nth last) message", inGroup: true, run: (*Engine).cmdEdit},
		{Name: "react", Args: "[^N|#ID] EMOJI", Summary: "react to the newest (or Nth newest) message of someone else", inGroup: true, run: (*Engine).cmdReact},
		{Name: "search", Args: "WORDS…", Summary: "search message history", run: (*Engine).cmdSearch},
		{Name: "send", Args: "PATH", Summary: "send a file to the group (end-to-end encrypted)", inGroup: true, run: (*Engine).cmdSend},
		{Name: "transfers", Args: "[get|pause|resume|cancel N] [limit SIZE|off]", Summary: "list file transfers, fetch, pause, cancel; set the group's auto-fetch limit", run: (*Engine).cmdTransfers},
		{Name: "open", Args: "N", Summary: "open a received file with the system's opener", run: (*Engine).cmdOpen},
		{Name: "retention", Args: "DURATION|off", Summary: "make messages disappear after DURATION (e.g. 7d) on every member", inGroup: true, run: (*Engine).cmdRetention},
		{Name: "card", Summary: "show your contact card to paste to others", aliases: []string{"id"}, run: (*Engine).cmdCard},
		{Name: "groups", Summary: "list your groups", run: (*Engine).cmdGroups},
		{Name: "invitations", Summary: "list pending invitations", run: (*Engine).cmdInvitations},
		{Name: "help", Summary: "list commands", aliases: []string{"?"}, run: (*Engine).cmdHelp},
		{Name: "quit", Summary: "quit canopy", aliases: []string{"exit"}, run: (*Engine).cmdQuit},
	}
	commandByName = make(map[string]*Command)
	for i := range Commands {
		c := &Commands[i]
		for _, n := range append([]string{c.Name}, c.aliases...) {
			if commandByName[n] != nil {
				panic("chat: command registered twice: " + n)
			}
			commandByName[n] = c
		}
	}
}

func (e *Engine) cmdCreate(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) == 0 {
		return Result{}, in.usage()
	}
	return e.create(ctx, in.args)
}

func (e *Engine) cmdReInit(ctx context.Context, in cmdInput) (Result, error) {
	return e.reinitGroup(ctx, in.g, in.args)
}

func (e *Engine) cmdInvite(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) == 0 {
		return Result{}, in.usage()
	}
	return e.invite(ctx, in.g, in.args)
}

func (e *Engine) cmdDM(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) != 1 {
		return Result{}, in.usage()
	}
	return e.dm(ctx, in.args[0])
}

func (e *Engine) cmdAccept(ctx context.Context, in cmdInput) (Result, error) {
	g, err := e.accept(ctx, in.rest)
	if err != nil {
		return Result{}, err
	}
	return Result{Text: "joined " + g.view.snapshot().Name, Group: g.gid}, nil
}

func (e *Engine) cmdDecline(ctx context.Context, in cmdInput) (Result, error) {
	inv, err := e.decline(ctx, in.rest)
	if err != nil {
		return Result{}, err
	}
	return Result{Text: "declined the invitation to " + inv.GroupName}, nil
}

func (e *Engine) cmdKick(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) == 0 {
		return Result{}, in.usage()
	}
	return e.kick(ctx, in.g, in.args)
}

func (e *Engine) cmdLeave(ctx context.Context, in cmdInput) (Result, error) {
	return e.leave(ctx, in.g)
}

func (e *Engine) cmdMembers(ctx context.Context, in cmdInput) (Result, error) {
	return Result{Text: membersText(in.g.view.memberList())}, nil
}

func (e *Engine) cmdVerify(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) == 0 {
		return Result{}, in.usage()
	}
	return e.verify(ctx, in.g, in.args[0], len(in.args) > 1 && strings.EqualFold(in.args[1], "confirm"))
}

func (e *Engine) cmdNick(ctx context.Context, in cmdInput) (Result, error) {
	if len(in.args) == 0 {
		return Result{Text: "your nickname is " + e.nick()}, nil
	}
	return e.setNick(ctx, in.rest)
}

func (e *Engine) cmdUpdate(ctx context.Context, in cmdInput) (Result, error) {
	if err := e.change(ctx, in.g, change{kind: changeUpdate}); err != nil {
		return Result{}, err
	}
	return Result{Text: fmt.Sprintf("your keys in %s are fresh (epoch %d)", in.g.view.snapshot().Name, in.g.view.snapshot().Epoch)}, nil
}

func (e *Engine) cmdEdit(ctx context.Context, in cmdInput) (Result, error) {
	return e.edit(ctx, in.g, in.rest)
}

func (e *Engine) cmdReact(ctx context.Context, in cmdInput) (Result, error) {
	return e.react(ctx, in.g, in.rest)
}

func (e *Engine) cmdSearch(ctx context.Context, in cmdInput) (Result, error) {
	if in.rest == "" {
		return Result{}, in.usage()
	}
	return e.search(ctx, in.gid, in.rest)
}

func (e *Engine) cmdRetention(ctx context.Context, in cmdInput) (Result, error) {
	return e.retention(ctx, in.g, in.rest)
}

func (e *Engine) cmdCard(ctx context.Context, in cmdInput) (Result, error) {
	c := e.card()
	return Result{Text: c.Text() + c.String()}, nil
}

func (e *Engine) cmdInvitations(ctx context.Context, in cmdInput) (Result, error) {
	var sb strings.Builder
	for _, inv := range e.Invitations() {
		fmt.Fprintf(&sb, "%s  %s (from %s)\n", inv.ID, inv.GroupName, inv.From)
	}
	if sb.Len() == 0 {
		return Result{Text: "no pending invitations"}, nil
	}
	return Result{Text: strings.TrimRight(sb.String(), "\n")}, nil
}

func (e *Engine) cmdGroups(ctx context.Context, in cmdInput) (Result, error) {
	var sb strings.Builder
	for _, gv := range e.Groups() {
		state := ""
		if gv.Left {
			state = " (left)"
		}
		if gv.Direct {
			state += " (direct)"
		}
		if gv.PostQuantum() {
			state += " (post-quantum)"
		}
		fmt.Fprintf(&sb, "%s  %s  %d members, epoch %d%s\n", gv.ID, gv.Name, gv.Members, gv.Epoch, state)
	}
	return Result{Text: strings.TrimRight(sb.String(), "\n")}, nil
}

func (e *Engine) cmdHelp(ctx context.Context, in cmdInput) (Result, error) {
	return Result{Text: helpText()}, nil
}

func (e *Engine) cmdQuit(ctx context.Context, in cmdInput) (Result, error) {
	return Result{}, ErrQuit
}

func helpText() string {
	var sb strings.Builder
	for _, c := range Commands {
		fmt.Fprintf(&sb, "/%-10s %-16s %s\n", c.Name, c.Args, c.Summary)
	}
	sb.WriteString("Anything else is sent to the group as a message (start it with // to send a leading /).")
	return sb.String()
}

func (e *Engine) needGroup(gid GroupID) (*group, error) {
	if gid == "" {
		return nil, errors.New("no group selected")
	}
	g := e.group(gid)
	if g == nil {
		return nil, fmt.Errorf("no group %s", gid)
	}
	return g, nil
}
