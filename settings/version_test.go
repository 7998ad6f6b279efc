package settings

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

func TestVersionSettingValid(t *testing.T) {
	for in, want := range map[string]string{
		`{"aadsshloginVersion": "1.0.031620001"}`: "1.0.031620001",
		`{"aadsshloginVersion": "1.0.027980001"}`: "1.0.027980001",
		`{"aadsshloginVersion": "2.10.0"}`:        "2.10.0",
		`{"aadsshloginVersion": null}`:            "",
		`{}`:                                      "",
	} {
		p, err := ParsePublic(json.RawMessage(in))
		if err != nil || p.AADSSHLoginVersion != want {
			t.Errorf("%s: got %q, %v; want %q", in, p.AADSSHLoginVersion, err, want)
		}
	}
}

// TestVersionSettingHostile: anything that is not a plain version is
// refused with 53 naming the field, in particular values that would become
// an option, a glob, a comparison, a second apt preferences stanza or a
// second package on a command line.
func TestVersionSettingHostile(t *testing.T) {
	for _, v := range []string{
		``, ` `, `1.0.031620001 `, ` 1.0.031620001`, `1.0`, `1`, `1.0.0.1`, `v1.0.031620001`,
		`1.0.031620001-1`, `1:1.0.031620001`, `1.0.031620001~rc1`, `1.0.031620001+b1`,
		`1.0.*`, `1.0.03162000?`, `1.0.[0-9]`, `*`, `>=1.0.031620001`, `<1.0.0`, `=1.0.0`,
		`-o APT::Get::AllowUnauthenticated=true`, `--oldpackage`, `-1.0.0`,
		"1.0.031620001\nPackage: *\nPin: release *\nPin-Priority: 1001",
		"1.0.031620001\x00", `1.0.031620001;rm -rf /`, `1.0.031620001 aadlogin`, `$(id)`,
		`１.０.０`, `1.0.0٣`, `1.0.` + strings.Repeat("9", 13), strings.Repeat("1", 5) + `.0.0`,
	} {
		raw, _ := json.Marshal(map[string]string{"aadsshloginVersion": v})
		_, err := ParsePublic(raw)
		var fe *failure.Error
		if !errors.As(err, &fe) || fe.Code != failure.BadSettings {
			t.Errorf("%q accepted (%v)", v, err)
			continue
		}
		if !strings.Contains(fe.Msg, "publicSettings.aadsshloginVersion") {
			t.Errorf("%q: message does not name the field: %q", v, fe.Msg)
		}
		if strings.ContainsAny(fe.Msg, "\n\x00") {
			t.Errorf("%q: message echoes control characters unquoted: %q", v, fe.Msg)
		}
	}
	for _, in := range []string{`{"aadsshloginVersion": 1.0}`, `{"aadsshloginVersion": ["1.0.031620001"]}`, `{"aadsshloginVersion": true}`} {
		_, err := ParsePublic(json.RawMessage(in))
		if failure.CodeOf(err) != failure.BadSettings || !strings.Contains(failure.MessageOf(err), "publicSettings.aadsshloginVersion must be a string") {
			t.Errorf("%s: %v", in, err)
		}
	}
	if _, err := ParsePublic(json.RawMessage(`{"AADSSHLoginVersion": "1.0.0"}`)); !strings.Contains(failure.MessageOf(err), `did you mean "aadsshloginVersion"?`) {
		t.Errorf("case-folded key: %v", err)
	}
}
