package settings

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

func TestParsePublicDefaults(t *testing.T) {
	for _, in := range []string{"", "  ", "null", " null\n", "{}", `{"repositoryUrl": null, "signingKeyFingerprints": null}`} {
		p, err := ParsePublic(json.RawMessage(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !reflect.DeepEqual(p, Public{}) {
			t.Fatalf("%q: got %+v", in, p)
		}
		if fps := p.Fingerprints(); !reflect.DeepEqual(fps, []string{"BC528686B50D79E339D3721CEB3E94ADBE1229CF", "AA86F75E427A19DD33346403EE4D7792F748182B"}) {
			t.Fatalf("default fingerprints %v", fps)
		}
	}
	if _, err := ParsePublic(nil); err != nil {
		t.Fatal(err)
	}
}

func TestParsePublicValid(t *testing.T) {
	in := `{
		"repositoryUrl": "HTTPS://mirror.example.com:8443/pmc//",
		"signingKeyFingerprints": ["bc52 8686 b50d 79e3 39d3  721c eb3e 94ad be12 29cf", "AA86F75E427A19DD33346403EE4D7792F748182B", "BC528686B50D79E339D3721CEB3E94ADBE1229CF"]
	}`
	p, err := ParsePublic(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Public{
		RepositoryURL:          "https://mirror.example.com:8443/pmc",
		SigningKeyFingerprints: []string{"BC528686B50D79E339D3721CEB3E94ADBE1229CF", "AA86F75E427A19DD33346403EE4D7792F748182B"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v", p)
	}
	fps := p.Fingerprints()
	fps[0] = "changed"
	if p.SigningKeyFingerprints[0] != "BC528686B50D79E339D3721CEB3E94ADBE1229CF" {
		t.Fatal("Fingerprints shares the slice")
	}
}

func TestParsePublicInvalid(t *testing.T) {
	cases := []struct{ in, want string }{
		{`[]`, "must be a JSON object, got an array"},
		{`"x"`, "must be a JSON object, got a string"},
		{`42`, "must be a JSON object"},
		{`{`, "not valid JSON"},
		{`{"repositoryUrl": "https://a"`, "not valid JSON"},
		{`{} {}`, "data after the JSON object"},
		{`{"foo": 1}`, `unknown key "foo". Accepted keys: repositoryUrl, signingKeyFingerprints, aadsshloginVersion.`},
		{`{"RepositoryUrl": "https://a"}`, `did you mean "repositoryUrl"?`},
		{`{"repositoryUrl": "https://a", "repositoryUrl": "https://b"}`, `"repositoryUrl" more than once`},
		{`{"repositoryUrl": 5}`, "publicSettings.repositoryUrl must be a string"},
		{`{"repositoryUrl": ""}`, "it is empty"},
		{`{"repositoryUrl": "http://mirror.example.com"}`, `publicSettings.repositoryUrl must be an https:// URL (only https is accepted), got "http://mirror.example.com"`},
		{`{"repositoryUrl": "mirror.example.com/pmc"}`, "only https"},
		{`{"repositoryUrl": "/pmc"}`, "only https"},
		{`{"repositoryUrl": "https:///pmc"}`, "host name is required"},
		{`{"repositoryUrl": "https://user:pw@mirror.example.com"}`, "passwords"},
		{`{"repositoryUrl": "https://mirror.example.com/?a=b"}`, "query"},
		{`{"repositoryUrl": "https://mirror.example.com/?"}`, "query"},
		{`{"repositoryUrl": "https://mirror.example.com/#x"}`, "fragment"},
		{`{"repositoryUrl": "https://mirror.example.com/a b"}`, "white space"},
		{`{"repositoryUrl": "https:mirror"}`, "https://"},
		// Characters a mirror does not need and the repository files give
		// a meaning: dnf/yum/tdnf split baseurl= on commas and expand "$"
		// variables; apt reads "[" "]" as options.
		{`{"repositoryUrl": "https://m.example/pmc,file:///var/tmp/r"}`, `the path contains ','`},
		{`{"repositoryUrl": "https://m.example/pmc,http://evil.example/"}`, `the path contains ','`},
		{`{"repositoryUrl": "https://m.example/$releasever"}`, `the path contains '$'`},
		{`{"repositoryUrl": "https://m.example/pmc%2Cfile:///x"}`, `the path contains '%'`},
		{`{"repositoryUrl": "https://m.example/a]b"}`, `the path contains ']'`},
		{`{"repositoryUrl": "https://m.example/a[b"}`, `the path contains '['`},
		{`{"repositoryUrl": "https://m.example/a;b"}`, `the path contains ';'`},
		{`{"repositoryUrl": "https://m.example/a'b"}`, `the path contains '\''`},
		{`{"repositoryUrl": "https://m.example/a\"b"}`, `the path contains '"'`},
		{`{"repositoryUrl": "https://m.example/a=b"}`, `the path contains '='`},
		{`{"repositoryUrl": "https://m.example/a:b"}`, `the path contains ':'`},
		{`{"repositoryUrl": "https://m.example/a\\b"}`, `the path contains '\\'`},
		{`{"repositoryUrl": "https://m.example/caf\u00e9"}`, `the path contains 'é'`},
		{`{"repositoryUrl": "https://m$x.example/pmc"}`, `the host name contains '$'`},
		{`{"repositoryUrl": "https://m,x.example/pmc"}`, `the host name contains ','`},
		{`{"repositoryUrl": "https://[::1]/pmc"}`, `the host name contains '['`},
		{`{"signingKeyFingerprints": "BC528686B50D79E339D3721CEB3E94ADBE1229CF"}`, "must be a list"},
		{`{"signingKeyFingerprints": []}`, "must not be empty"},
		{`{"signingKeyFingerprints": [1]}`, "signingKeyFingerprints[0] must be a string"},
		{`{"signingKeyFingerprints": ["EB3E94ADBE1229CF"]}`, "signingKeyFingerprints[0] must be a key fingerprint of 40 hexadecimal digits"},
		{`{"signingKeyFingerprints": ["BC528686B50D79E339D3721CEB3E94ADBE1229CG"]}`, "40 hexadecimal"},
	}
	for _, c := range cases {
		_, err := ParsePublic(json.RawMessage(c.in))
		var fe *failure.Error
		if !errors.As(err, &fe) || fe.Code != failure.BadSettings {
			t.Errorf("%s: got %v", c.in, err)
			continue
		}
		if !strings.Contains(fe.Msg, c.want) {
			t.Errorf("%s: message %q lacks %q", c.in, fe.Msg, c.want)
		}
	}
}

func TestRepositoryURLCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"https://mirror.example.com/pmc":                       "https://mirror.example.com/pmc",
		"https://mirror-1.example.com:8443/a_b/c.d/~e/":        "https://mirror-1.example.com:8443/a_b/c.d/~e",
		"https://10.0.0.5/artifactory/api/rpm/pmc-remote":      "https://10.0.0.5/artifactory/api/rpm/pmc-remote",
		"https://Nexus.Example.COM/repository/packages-ms-com": "https://Nexus.Example.COM/repository/packages-ms-com",
	} {
		p, err := ParsePublic(json.RawMessage(`{"repositoryUrl": "` + in + `"}`))
		if err != nil || p.RepositoryURL != want {
			t.Errorf("%s: got %q, %v; want %q", in, p.RepositoryURL, err, want)
		}
	}
}

func TestLongValueIsClipped(t *testing.T) {
	_, err := ParsePublic(json.RawMessage(`{"repositoryUrl": "http://` + strings.Repeat("é", 500) + `"}`))
	if err == nil || len(failure.MessageOf(err)) > 400 {
		t.Fatalf("message not clipped: %v", err)
	}
}

func FuzzParsePublic(f *testing.F) {
	f.Add([]byte(`{"repositoryUrl":"https://mirror.example.com/pmc/"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublic(json.RawMessage(data))
		if err != nil {
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Code != failure.BadSettings || fe.Msg == "" {
				t.Fatalf("error is not a BadSettings failure: %v", err)
			}
			return
		}
		if p.RepositoryURL != "" {
			rest, ok := strings.CutPrefix(p.RepositoryURL, "https://")
			if !ok || strings.HasSuffix(p.RepositoryURL, "/") {
				t.Fatalf("bad URL accepted: %q", p.RepositoryURL)
			}
			for _, r := range rest {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~/:", r)) {
					t.Fatalf("URL with %q accepted: %q", r, p.RepositoryURL)
				}
			}
		}
		if p.SigningKeyFingerprints != nil && len(p.SigningKeyFingerprints) == 0 {
			t.Fatal("empty non-nil fingerprint list")
		}
		if p.AADSSHLoginVersion != "" && !ValidPackageVersion(p.AADSSHLoginVersion) {
			t.Fatalf("bad version accepted: %q", p.AADSSHLoginVersion)
		}
		for _, fp := range p.Fingerprints() {
			if n, ok := NormalizeFingerprint(fp); !ok || n != fp {
				t.Fatalf("bad fingerprint accepted: %q", fp)
			}
		}
	})
}
