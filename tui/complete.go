package tui

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/canopy-chat/canopy/chat"
)

// Completion of the composer's text, irssi style: the first Tab replaces the
// word being typed with the first candidate, every further Tab (Shift-Tab)
// with the next (previous) one; any other key accepts the current one. The
// rule above the composer lists the candidates.
//
// Contexts:
//   - "/par"             → slash command names (chat.Commands)
//   - "/kick al", "/verify al" → nicks of the group's members
//   - "/invite al"       → nicks of nearby canopy peers
//   - "/edit "           → the text of your last message, to change it
//   - "/react "          → a few common reactions
//   - "/send ~/Doc"      → files and folders (paths may contain spaces)
//   - "… @al"            → nicks of the group's members (a mention)
//
// Completion works on the end of the text, where the cursor is when typing.

// completion is an active cycle through candidates.
type completion struct {
	head  string   // text before the completed word
	cands []string // full replacements of the word
	idx   int
	// after is the composer value right after the last completion step; a
	// Tab on a different value starts over.
	after string
}

// nickArgCommands take a member's nick as their first argument.
var nickArgCommands = map[string]bool{"kick": true, "verify": true}

// isCommandLine reports whether text is a slash command.
func isCommandLine(text string) bool { return strings.HasPrefix(text, "/") }

// completionSource is what completion draws from.
type completionSource struct {
	commands []chat.Command
	members  []string // nicks in the selected group
	nearby   []string // nicks of connected canopy peers (/invite)
	self     string
	lastOwn  string // text of the user's newest message in the group (/edit)
}

// quickReactions are what Tab offers after "/react ".
var quickReactions = []string{"👍", "❤️", "😂", "🎉", "👀", "🔥", "✅"}

// completeCandidates works out the completion context of text. ok is false
// when text offers no context (then Tab moves the focus instead).
func completeCandidates(text string, src completionSource) (head string, cands []string, ok bool) {
	if isCommandLine(text) && !strings.ContainsAny(text, " \n") {
		prefix := strings.ToLower(text[1:])
		for _, c := range src.commands {
			if strings.HasPrefix(c.Name, prefix) {
				cands = append(cands, "/"+c.Name+" ")
			}
		}
		return "", cands, true
	}
	if isCommandLine(text) {
		name, rest, _ := strings.Cut(text[1:], " ")
		if strings.EqualFold(name, "send") && !strings.Contains(rest, "\n") {
			return "/" + name + " ", completePath(rest), true
		}
		if strings.ContainsAny(rest, " \n") {
			return "", nil, true // inside a command: Tab never leaves the composer
		}
		switch lname := strings.ToLower(name); {
		case nickArgCommands[lname]:
			exclude := ""
			if lname == "kick" {
				exclude = src.self
			}
			return "/" + name + " ", matchNicks(src.members, rest, exclude, ""), true
		case lname == "invite" || lname == "dm":
			return "/" + name + " ", matchNicks(src.nearby, rest, src.self, ""), true
		case lname == "edit" && rest == "" && src.lastOwn != "":
			text := src.lastOwn
			if looksLikeSelector(text) {
				text = "^1 " + text // keep the text from being read as a selector
			}
			return "/" + name + " ", []string{text}, true
		case lname == "react" && rest == "":
			return "/" + name + " ", quickReactions, true
		}
		return "", nil, true
	}
	// a mention at the end of the text
	i := strings.LastIndexAny(text, " \n")
	word := text[i+1:]
	if strings.HasPrefix(word, "@") {
		return text[:i+1], matchNicks(src.members, word[1:], src.self, "@"), true
	}
	return "", nil, false
}

func matchNicks(nicks []string, prefix, exclude, sigil string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range nicks {
		if n == "" || n == exclude || seen[n] {
			continue
		}
		if strings.HasPrefix(strings.ToLower(n), strings.ToLower(prefix)) {
			seen[n] = true
			out = append(out, sigil+n+" ")
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// commandHint describes the slash command being typed, for the rule above
// the composer: "/kick NICK — remove a member from the group".
func commandHint(text string, commands []chat.Command) string {
	if !isCommandLine(text) {
		return ""
	}
	name, _, _ := strings.Cut(text[1:], " ")
	name = strings.ToLower(strings.TrimSpace(name))
	var prefixed []chat.Command
	for _, c := range commands {
		if c.Name == name {
			return commandSynopsis(c) + " — " + c.Summary
		}
		if strings.HasPrefix(c.Name, name) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 0 {
		return "unknown command · /help lists them"
	}
	names := make([]string, len(prefixed))
	for i, c := range prefixed {
		names[i] = "/" + c.Name
	}
	return strings.Join(names, " ")
}

// looksLikeSelector reports whether text starts with a word that /edit and
// /react would read as a target selector (^N or #ID, see chat/compose.go).
func looksLikeSelector(text string) bool {
	word, _, _ := strings.Cut(text, " ")
	if len(word) < 2 {
		return false
	}
	switch word[0] {
	case '^':
		return strings.Trim(word[1:], "0123456789") == ""
	case '#':
		return len(word) >= 5 && strings.Trim(strings.ToLower(word[1:]), "0123456789abcdef") == ""
	}
	return false
}

// lastOwnText is the text of the user's newest (not deleted) message in
// the selected group, for completing /edit.
func lastOwnText(s *session) string {
	if s.selected == homeID {
		return ""
	}
	b := s.buffer(s.selected)
	for i := len(b.entries) - 1; i >= 0; i-- {
		e := b.entries[i]
		if !e.local && !e.deleted && e.msg.Own && e.msg.Kind == chat.KindText {
			return e.msg.Body
		}
	}
	return ""
}

// maxPathCandidates bounds what one directory listing offers.
const maxPathCandidates = 200

// completePath lists the files and folders whose path starts with typed
// (folders end in "/"). Hidden entries show only when the typed name
// starts with a dot. The typed directory part is kept as written (~/…).
func completePath(typed string) []string {
	dirPart := ""
	if i := strings.LastIndex(typed, "/"); i >= 0 {
		dirPart = typed[:i+1]
	}
	base := typed[len(dirPart):]
	dir := chat.CleanPath(dirPart)
	if dirPart == "" {
		dir = "."
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	ents, _ := f.ReadDir(4096) // a huge directory is listed in part
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
				isDir = st.IsDir()
			}
		}
		cand := dirPart + name
		if isDir {
			cand += "/"
		}
		out = append(out, cand)
	}
	sort.Strings(out)
	return out[:min(len(out), maxPathCandidates)]
}

// droppedFile returns the path of an existing file if pasted is one (what a
// terminal pastes when a file is dropped on it), else "".
func droppedFile(pasted string) string {
	pasted = strings.TrimSpace(pasted)
	if pasted == "" || strings.ContainsAny(pasted, "\n\r") {
		return ""
	}
	p := chat.CleanPath(pasted)
	if !filepath.IsAbs(p) {
		return ""
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
}
