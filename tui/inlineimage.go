package tui

import (
	"bytes"
	"image/png"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/canopy-chat/canopy/chat"
)

// Inline images: a received image (PNG, JPEG or GIF) whose transfer is done
// (the engine marks a transfer done only after the file matched its
// announced hash) is decoded in a command, scaled to its box and encoded
// for the terminal's protocol; the timeline then draws it under the file's
// line. Until then, and on terminals without graphics, the file's line
// (name, size, dimensions) stands alone.

// inlineImage is a message's image as the timeline draws it.
type inlineImage struct {
	ready      bool
	cols, rows int
	kittyID    uint32 // kitty: the image's id in the terminal
	sixelID    int    // sixel: the number in the image's screen markers
}

// imageLoadedMsg: an image was decoded and encoded (or could not be).
type imageLoadedMsg struct {
	group      chat.GroupID
	msg        chat.MessageID
	cols, rows int
	png        []byte // kitty: the scaled image
	sixel      string // sixel: the encoded image
	err        error
}

// imageDecodes bounds the images decoded at once (a semaphore).
var imageDecodes = make(chan struct{}, 1)

// kittyIDBase keeps canopy's image ids apart from small ids other programs
// in the same window may have used.
const kittyIDBase = 0xCA0000

// startInlineImage begins loading a finished transfer's image, if it is
// one the terminal can show and it is not loaded yet.
func (m *model) startInlineImage(tr chat.Transfer) tea.Cmd {
	s := m.s
	if s.gfx == graphicsNone || tr.Own || tr.Status != chat.TransferDone || tr.Path == "" ||
		!inlineImageTypes[tr.File.MediaType] {
		return nil
	}
	if _, ok := s.images[tr.Message]; ok {
		return nil
	}
	if s.images == nil {
		s.images = map[chat.MessageID]*inlineImage{}
	}
	s.images[tr.Message] = &inlineImage{}
	proto, cellW, cellH := s.gfx, s.cellW, s.cellH
	path, group, id := tr.Path, tr.Group, tr.Message
	return func() tea.Msg {
		msg := imageLoadedMsg{group: group, msg: id}
		// One decode at a time: after a restart every image in the
		// history is loaded at once, and one canvas may take 256 MB.
		imageDecodes <- struct{}{}
		defer func() { <-imageDecodes }()
		img, err := loadImage(path)
		if err != nil {
			msg.err = err
			return msg
		}
		b := img.Bounds()
		cols, rows := fitCells(b.Dx(), b.Dy(), cellW, cellH, imageMaxCols, imageMaxRows)
		if cellW <= 0 || cellH <= 0 {
			cellW, cellH = defaultCellW, defaultCellH
		}
		// Scaled to the box's pixels, not sent whole: a 4000-pixel photo
		// would be megabytes of base64 through the terminal for a
		// thumbnail. The aspect ratio is kept within the box.
		w := min(cols*cellW, b.Dx()*rows*cellH/b.Dy(), b.Dx())
		h := min(rows*cellH, b.Dy()*cols*cellW/b.Dx(), b.Dy())
		small := scaleImage(img, max(1, w), max(1, h))
		msg.cols, msg.rows = cols, rows
		switch proto {
		case graphicsKitty:
			var buf bytes.Buffer
			if err := png.Encode(&buf, small); err != nil {
				msg.err = err
				return msg
			}
			msg.png = buf.Bytes()
		case graphicsSixel:
			msg.sixel = encodeSixel(small)
		}
		return msg
	}
}

// imageLoaded records a loaded image, sends it to the terminal (kitty) or
// registers it with the output (sixel), and redraws its message.
func (m *model) imageLoaded(msg imageLoadedMsg) {
	s := m.s
	im := s.images[msg.msg]
	if im == nil {
		return
	}
	if msg.err != nil || msg.cols == 0 {
		return // the file's line stands in
	}
	im.cols, im.rows = msg.cols, msg.rows
	switch s.gfx {
	case graphicsKitty:
		s.nextImage++
		im.kittyID = kittyIDBase + uint32(s.nextImage)
		if m.fx.graphics != nil {
			m.fx.graphics(kittyTransmit(im.kittyID, msg.png, im.cols, im.rows))
		}
	case graphicsSixel:
		if m.fx.sixels == nil {
			return
		}
		im.sixelID = m.fx.sixels.add(msg.sixel, im.cols)
	}
	im.ready = true
	b := s.buffer(msg.group)
	if e := b.find(msg.msg); e != nil {
		b.changed(e)
	}
}
