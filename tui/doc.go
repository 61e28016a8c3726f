// Package tui is canopy's terminal interface, built with Bubble Tea. It talks
// only to package chat (DESIGN.md §7): everything it shows comes from a
// chat.Client, and everything the user types goes back through
// chat.Client.Execute.
//
// # Entry points
//
// Run shows the messenger until the user quits, the context ends or the
// engine stops. It uses the alternate screen, the mouse (WithoutMouse leaves
// it to the terminal for native selection), bracketed paste and focus
// reporting. Options: WithInput, WithOutput, WithLocation, WithoutMouse,
// WithoutBell, WithNotify, WithDesktopNotify, WithHistoryPage.
//
// Setup is the first-run screen: it asks for a nickname and an optional
// passphrase (masked, typed twice) and returns them.
//
// # The screen
//
//	  groups          │  # general  ! key changed: carol         │  members 4
//	 home           ✉1│             up                           │ ! carol
//	›general          │             👍 1                         │ ✓ alice (you)
//	 日本語チーム 2 @1│10:02 李小龙 你好！@alice 看看这个        │ ✓ bob
//	 ops 🚀 launch cr…│10:03    bob ↪ alice: hi all, the new …   │   李小龙
//	                  │             nice, thanks! (edited)       │
//	                  │10:05  alice sending…                    ◌│
//	                  │             second line                  │
//	── enter send · alt+enter newline · tab complete/focus · ? help ────────────────
//	› message general
//	 alice  4 peers · 2 relays · behind NAT · epoch 12                       ? help
//
// On the left, the group list: home (your profile, contact card,
// invitations, notices and command output outside a group), then your
// groups with their unread count and, after @, how many messages mention
// you. In the middle, the timeline of the selected group: the time each
// message was sent (sender's clock, local time zone), the sender in a colour
// derived from their key fingerprint, the text, and for your own messages
// the delivery state: ◌ pending, ✓ sent, ✓✓ delivered, ✗ failed (retried).
// Lines with * come from the engine (joins, leaves, forks healed), ! marks
// warnings and ✗ errors. On the right, the members: ✓ verified, ! key changed
// (also flagged in the timeline title and with a warning line: compare
// safety numbers with /verify before trusting that member). The line above
// the composer shows hints: the synopsis of the command being typed, Tab
// completions, who is typing. The status bar shows your nick, peers,
// connected relays (when relays are configured), reachability (public,
// behind NAT, reachability unknown) and the group's MLS epoch (not for a
// group you are no longer in), and flashes notices. Below 80 columns the member panel is hidden
// (/members lists them), below 50 the group list (Ctrl-N/Ctrl-P still
// switch); below 40×10 the screen asks for a larger window.
//
// Coming back to a group with unread messages, a "── new messages ──" line
// marks the first of them, and the timeline opens there when they are more
// than a screen (alt+n goes back to it later). The terminal's title shows
// the unread and mention counts of all groups, as "(5 @1) canopy".
//
// URLs in messages are wrapped like other text, but every piece of a URL
// is a hyperlink to the whole address (OSC 8), so a click on any piece
// opens it in terminals that support hyperlinks.
//
// A file message shows "📎 name  size  W×H" and under it the transfer: a
// progress bar, where the file was saved, or why it was not received.
// Received images are drawn inline, at most 40×12 cells, when the
// terminal answered the graphics query sent at start (kitty graphics, as
// unicode placeholders, or sixel; CANOPY_IMAGES=off|kitty|sixel
// overrides); never from a guess.
//
// A message that mentions you in a group you are not looking at, or while
// the terminal window is in the background, rings the terminal bell, calls
// the WithNotify hook and, when turned on (WithDesktopNotify, canopy
// --notify osc9|osc777), asks the terminal for a desktop notification that
// names the sender and the group but not the message.
//
// # Keys
//
// Everywhere:
//
//	ctrl+c             quit (or /quit)
//	?                  this help (when the composer is empty or not focused)
//	esc                close help, cancel completion, back to the composer
//	tab, shift+tab     focus the next / previous pane
//	ctrl+n, ctrl+p     next / previous group (also alt+down / alt+up)
//	pgup, pgdn         scroll the timeline; older messages load at the top
//	ctrl+home, ctrl+end  the oldest / newest message of the timeline
//	alt+n                back to the "new messages" line
//	mouse wheel        scroll the pane under the pointer; click a group to open it
//	alt+m              mouse on / off (off: select and copy text with the mouse)
//
// In the composer:
//
//	enter              send the message or run the /command
//	alt+enter, ctrl+j  new line (pasted text keeps its newlines)
//	tab                complete /command, the nick after /kick and /verify,
//	                   @nick, your last message after /edit, a reaction
//	                   after /react; tab again cycles, shift+tab goes back
//	up, down           previous / next sent line
//	home, end            start / end of the line; again: the oldest / newest
//	                     message (what a scrolled timeline's "· End" offers)
//
// In the group list, the timeline and the member panel:
//
//	up/k, down/j       move / scroll
//	home/g, end/G      first / last
//	enter              open the group; on a member: write @nick
//	v                  on a member: /verify NICK
//
// Typing a letter in another pane goes to the composer. Text is never a
// key: a word whose letters arrive together (over a slow link, or pasted
// without bracketed paste) is typed as it is, even if it reads "enter",
// "up" or "ctrl+c". The usual editing
// keys work in the composer (ctrl+a/e, ctrl+u/k, ctrl+w, alt+b/f, …).
//
// # Commands
//
// Lines starting with / are commands, listed in the help with their
// arguments (chat.Commands): /create, /invite, /accept, /decline, /kick,
// /leave, /members, /verify, /nick, /update, /edit, /react, /search,
// /retention, /card, /help, /quit, and /info, which the TUI adds. /help
// opens the help, /quit quits and /info [^N|#ID] shows a loaded message's
// details (id, sender and key fingerprint, the sender's time, epoch, reply,
// edit, and for your own messages the delivery state, which the engine
// keeps for the group as a whole) without asking the engine; the rest run in the engine, and their output
// appears in the timeline (results of /invite, /kick, /update and
// /retention in the status bar: the engine's own line in the timeline
// tells every member). /card also copies your compact contact card to the
// clipboard through the terminal (OSC 52), since the mouse, captured for
// scrolling, cannot select it (alt+m releases the mouse, --no-mouse keeps
// it released). Tab completes command names, members' nicks
// after /kick and /verify, nearby peers' nicks after /invite, the text of
// your last message after /edit (change it and press Enter) and a few
// common reactions after /react. /edit acts on your last message and
// /react on the newest message of someone else; ^2, ^3 … before the text
// pick older ones. A group
// you left (or were removed from) stays in the list, marked "left", with
// its history; its title says "you left" or "removed by NICK".
//
// /search WORDS lists the matching messages (of the group, or of every
// group from home) in a view of its own, newest first: every word matches
// anywhere in a message. Enter shows the chosen message, highlighted, in
// its group's timeline (older history loads as needed); Esc closes.
//
// While you write a message (not a /command) in a group, the members are
// told that you are typing, at most once every 3 seconds; they show it on
// the line above their composer for a few seconds.
//
// # Design notes
//
// Soft-serve style components (Component: a tea.Model with SetSize) render
// the shared session state into exactly the space they are given; the root
// model owns the state, the focus and the layout. All engine calls run in
// tea.Cmds; engine events arrive through a re-armed wait command that
// batches bursts. Execute calls are queued and run one at a time so that
// messages keep their order. Text from peers is sanitised before display
// (escape sequences, control characters and bidirectional overrides are
// removed), and every width is measured in terminal cells
// (github.com/charmbracelet/x/ansi), so CJK and emoji line up. Keys are
// defined in keymap.go, styles in styles.go.
package tui
