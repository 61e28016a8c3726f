package chat

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"golang.org/x/crypto/cryptobyte"
)

// canopy's application-specific MLS extensions.
//
// The group's settings travel in the GroupContext, so that every member
// agrees on them and a change is an MLS Commit (a GroupContextExtensions
// proposal), ordered like any other:
//
//	struct {
//	    uint8  version = 1;
//	    opaque name<0..255>;        // uint8 length; UTF-8
//	    uint64 retention_seconds;   // disappearing messages; 0 keeps history
//	} CanopyGroupSettings;          // extension type 0xF0C1
//
// A direct conversation (/dm, direct.go) uses version 2, which appends
//
//	    uint8  flags;               // bit 0: direct; other bits zero
//
// so that both members know, from the authenticated GroupContext, that the
// group is a two-person conversation. Other groups keep version 1, byte
// for byte what older versions wrote.
//
// 0xF0C1 is in the private-use range of the MLS extension registry
// (RFC 9420 §17.3). Groups list it in required_capabilities, so only
// clients that understand it can be added.
//
// A member's nickname at the time its KeyPackage was made is carried in the
// leaf's application_id extension (RFC 9420 §5.3.3) as
//
//	struct {
//	    uint8  version = 1;
//	    opaque nick<1..64>;         // uint8 length
//	} CanopyProfile;
//
// It is a hint shown until the member's signed contact card (a profile
// application message) arrives.

const extSettings mls.ExtensionType = 0xF0C1

// groupSettings is the decoded CanopyGroupSettings extension.
type groupSettings struct {
	Name      string
	Retention time.Duration // whole seconds
	// Direct marks a two-member direct conversation (direct.go). It is
	// fixed at creation: a Commit that changes it is rejected.
	Direct bool
}

const settingsFlagDirect uint8 = 1

var errBadSettings = errors.New("chat: malformed group settings")

func (s groupSettings) marshal() ([]byte, error) {
	if len(s.Name) > 255 {
		return nil, fmt.Errorf("%w: name longer than 255 bytes", errBadSettings)
	}
	if s.Retention < 0 {
		return nil, fmt.Errorf("%w: negative retention", errBadSettings)
	}
	version := uint8(1)
	if s.Direct {
		version = 2
	}
	var b cryptobyte.Builder
	b.AddUint8(version)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.Name)) })
	b.AddUint64(uint64(s.Retention / time.Second))
	if s.Direct {
		b.AddUint8(settingsFlagDirect)
	}
	return b.Bytes()
}

func parseSettings(data []byte) (groupSettings, error) {
	s := cryptobyte.String(data)
	var (
		v    uint8
		name cryptobyte.String
		ret  uint64
	)
	if !s.ReadUint8(&v) || (v != 1 && v != 2) || !s.ReadUint8LengthPrefixed(&name) || !s.ReadUint64(&ret) {
		return groupSettings{}, errBadSettings
	}
	var flags uint8
	if v == 2 && (!s.ReadUint8(&flags) || flags != settingsFlagDirect) {
		return groupSettings{}, fmt.Errorf("%w: unknown flags", errBadSettings)
	}
	if !s.Empty() {
		return groupSettings{}, errBadSettings
	}
	if ret > uint64(100*365*24*3600) {
		return groupSettings{}, fmt.Errorf("%w: retention out of range", errBadSettings)
	}
	return groupSettings{Name: string(name), Retention: time.Duration(ret) * time.Second, Direct: flags&settingsFlagDirect != 0}, nil
}

// settingsOf reads the settings of a group (zero settings when absent).
func settingsOf(exts []mls.Extension) groupSettings {
	for _, e := range exts {
		if e.Type == extSettings {
			s, err := parseSettings(e.Data)
			if err == nil {
				return s
			}
		}
	}
	return groupSettings{}
}

// groupExtensions builds the GroupContext extensions of a group with s,
// keeping the other extensions of old.
func groupExtensions(old []mls.Extension, s groupSettings) ([]mls.Extension, error) {
	data, err := s.marshal()
	if err != nil {
		return nil, err
	}
	var out []mls.Extension
	haveReq := false
	for _, e := range old {
		switch e.Type {
		case extSettings:
			continue
		case mls.ExtensionRequiredCapabilities:
			haveReq = true
		}
		out = append(out, e)
	}
	if !haveReq {
		rc := mls.RequiredCapabilities{ExtensionTypes: []mls.ExtensionType{extSettings}}
		rcData, err := rc.Marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, mls.Extension{Type: mls.ExtensionRequiredCapabilities, Data: rcData})
	}
	return append(out, mls.Extension{Type: extSettings, Data: data}), nil
}

// capabilities are what canopy's leaves advertise: the suites this
// client runs groups on (pq.go), not every suite mls/ implements.
func capabilities() mls.Capabilities {
	c := mls.DefaultCapabilities()
	c.CipherSuites = slices.Clone(offeredSuites)
	c.Extensions = append(c.Extensions, extSettings)
	return c
}

// profileExtension returns the application_id leaf extension with nick.
func profileExtension(nick string) ([]mls.Extension, error) {
	var b cryptobyte.Builder
	b.AddUint8(1)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(nick)) })
	inner, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	app := mls.ApplicationID(inner)
	data, err := app.Marshal()
	if err != nil {
		return nil, err
	}
	return []mls.Extension{{Type: mls.ExtensionApplicationID, Data: data}}, nil
}

// leafNick reads the nickname hint of a leaf ("" if none).
func leafNick(ln *mls.LeafNode) string {
	if ln == nil {
		return ""
	}
	for _, e := range ln.Extensions {
		if e.Type != mls.ExtensionApplicationID {
			continue
		}
		var app mls.ApplicationID
		if app.Unmarshal(e.Data) != nil {
			return ""
		}
		s := cryptobyte.String(app)
		var v uint8
		var nick cryptobyte.String
		if !s.ReadUint8(&v) || v != 1 || !s.ReadUint8LengthPrefixed(&nick) || !s.Empty() {
			return ""
		}
		if validNick(string(nick)) != nil {
			return ""
		}
		return string(nick)
	}
	return ""
}
