package proxy

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/sysroot"
)

func rootWith(t *testing.T, waagent string) sysroot.Root {
	t.Helper()
	dir := t.TempDir()
	if waagent != "" {
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "etc/waagent.conf"), []byte(waagent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sysroot.Root(dir)
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const conf = `# Microsoft Azure Linux Agent Configuration
Provisioning.Agent=auto
HttpProxy.Host=proxy.corp.example
HttpProxy.Port=3128
`

func TestResolveOrder(t *testing.T) {
	cases := []struct {
		name               string
		in                 Inputs
		want, from, noProx string
	}{
		{"setting wins, with credentials", Inputs{Root: rootWith(t, conf), Getenv: env("https_proxy", "http://env:1"),
			Setting: "http://set.example:8080", User: "u", Password: "p@ss"},
			"http://u:p%40ss@set.example:8080", "the httpProxy setting", "169.254.169.254"},
		{"waagent.conf before the environment", Inputs{Root: rootWith(t, conf), Getenv: env("https_proxy", "http://env:1", "no_proxy", "localhost,.corp")},
			"http://proxy.corp.example:3128", "/etc/waagent.conf (HttpProxy.Host, HttpProxy.Port)", "169.254.169.254,localhost,.corp"},
		{"waagent.conf None is unset", Inputs{Root: rootWith(t, "HttpProxy.Host=None\nHttpProxy.Port=None\n"), Getenv: env("HTTPS_PROXY", "env.example:3128")},
			"http://env.example:3128", "the HTTPS_PROXY environment variable", "169.254.169.254"},
		{"nothing", Inputs{Root: rootWith(t, ""), Getenv: env("no_proxy", "169.254.169.254")}, "", "", "169.254.169.254"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Resolve(c.in)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if p.URL != nil {
				got = p.URL.String()
			}
			if got != c.want || p.Source != c.from || p.NoProxy != c.noProx {
				t.Fatalf("got %q from %q, no_proxy %q", got, p.Source, p.NoProxy)
			}
			if strings.Contains(p.Redacted(), "ss") || strings.Contains(p.Describe(), "p@ss") {
				t.Errorf("credentials shown: %q %q", p.Redacted(), p.Describe())
			}
		})
	}
}

func TestResolveRefusesWhatCannotBeUsed(t *testing.T) {
	for _, in := range []Inputs{
		{Root: rootWith(t, "HttpProxy.Host=bad host\nHttpProxy.Port=3128\n")},
		{Root: rootWith(t, "HttpProxy.Host=proxy\nHttpProxy.Port=x y\n")},
		{Root: rootWith(t, ""), Getenv: env("https_proxy", "http://user:secret@[::1")},
	} {
		_, err := Resolve(in)
		if err == nil {
			t.Errorf("%+v accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestEnvAndFunc(t *testing.T) {
	u, _ := url.Parse("http://u:p@proxy:3128")
	p := Proxy{URL: u, NoProxy: "169.254.169.254,.internal"}
	e := p.Env()
	for _, want := range []string{"https_proxy=http://u:p@proxy:3128", "HTTP_PROXY=http://u:p@proxy:3128", "no_proxy=169.254.169.254,.internal"} {
		if !slices.Contains(e, want) {
			t.Errorf("Env lacks %q: %v", want, e)
		}
	}
	f := p.Func()
	for target, proxied := range map[string]bool{
		"https://packages.microsoft.com/keys/microsoft.asc": true,
		"http://169.254.169.254/metadata/instance":          false,
		"https://host.internal/":                            false,
	} {
		r, _ := http.NewRequest(http.MethodGet, target, nil)
		got, err := f(r)
		if err != nil || (got != nil) != proxied {
			t.Errorf("%s: proxy %v (%v), want proxied=%v", target, got, err, proxied)
		}
	}
	// Resolved without a proxy: no_proxy still keeps IMDS off an inherited one.
	none := Proxy{NoProxy: "169.254.169.254"}
	if e := none.Env(); !slices.Contains(e, "no_proxy=169.254.169.254") || slices.ContainsFunc(e, func(s string) bool { return strings.HasPrefix(s, "https_proxy") }) {
		t.Errorf("no proxy: %v", e)
	}
	if (Proxy{}).Env() != nil {
		t.Error("an unresolved proxy overrides the inherited variables")
	}
}
