package settings

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

func TestHTTPProxySetting(t *testing.T) {
	good := map[string]string{
		`"http://proxy.example.com:3128"`: "http://proxy.example.com:3128",
		`"https://10.0.0.4:8443/"`:        "https://10.0.0.4:8443",
		`null`:                            "",
	}
	for in, want := range good {
		p, err := ParsePublic(json.RawMessage(`{"httpProxy": ` + in + `}`))
		if err != nil || p.HTTPProxy != want {
			t.Errorf("%s: %q %v", in, p.HTTPProxy, err)
		}
	}
	for _, in := range []string{
		`"proxy.example.com:3128"`, `"socks5://p:1080"`, `"http://user:pw@p:3128"`, `"http://p"`,
		`"http://p:3128/path"`, `"http://p:3128?x=1"`, `"http://p:3128,file:///x"`, `"http://p :3128"`,
		`"http://p:3128\n"`, `3128`, `"http://$HOST:3128"`,
	} {
		_, err := ParsePublic(json.RawMessage(`{"httpProxy": ` + in + `}`))
		if failure.CodeOf(err) != failure.BadSettings || !strings.Contains(failure.MessageOf(err), "httpProxy") {
			t.Errorf("%s accepted or unclear: %v", in, err)
		}
	}
}

func TestParseProtected(t *testing.T) {
	p, err := ParseProtected(json.RawMessage(`{"httpProxyUsername": "svc", "httpProxyPassword": "s3cr3t"}`))
	if err != nil || p.HTTPProxyUsername != "svc" || p.HTTPProxyPassword != "s3cr3t" {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := ParseProtected(nil); err != nil || p != (Protected{}) {
		t.Fatalf("empty: %+v %v", p, err)
	}
	for _, in := range []string{
		`{"httpProxyPassword": "s3cr3t"}`, `{"other": "s3cr3t"}`, `{"httpProxyUsername": 1}`,
		`{"httpProxyUsername": "a\nb"}`, `[]`, `{"httpProxyUsername": "a"} x`,
	} {
		_, err := ParseProtected(json.RawMessage(in))
		if failure.CodeOf(err) != failure.BadSettings {
			t.Errorf("%s: %v", in, err)
		}
		if err != nil && strings.Contains(failure.MessageOf(err), "s3cr3t") {
			t.Errorf("%s: the message shows a secret: %q", in, failure.MessageOf(err))
		}
	}
}
