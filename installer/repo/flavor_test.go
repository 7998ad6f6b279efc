package repo

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/failure"
)

func repomd(primaryHref string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1718000000</revision>
  <data type="filelists"><location href="repodata/aa-filelists.xml.gz"/></data>
  <data type="primary">
    <checksum type="sha256">00</checksum>
    <location href="%s"/>
  </data>
</repomd>
`, primaryHref))
}

func primary(names ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="%d">
`, len(names))
	for _, n := range names {
		fmt.Fprintf(&b, `<package type="rpm"><name>%s</name><arch>x86_64</arch><version epoch="0" ver="1.0.031620001" rel="1"/>
<format><rpm:provides><rpm:entry name="notthis"/></rpm:provides></format></package>
`, n)
	}
	b.WriteString("</metadata>\n")
	return b.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fakePMC serves a packages.microsoft.com-like tree and records requests.
type fakePMC struct {
	files    map[string][]byte
	statuses map[string]int
	mu       sync.Mutex
	requests []string
}

func (f *fakePMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.URL.Path)
	f.mu.Unlock()
	for prefix, code := range f.statuses {
		if strings.HasPrefix(r.URL.Path, prefix) {
			http.Error(w, http.StatusText(code), code)
			return
		}
	}
	if body, ok := f.files[r.URL.Path]; ok {
		w.Write(body)
		return
	}
	http.NotFound(w, r)
}

func newFakePMC(t *testing.T) (*fakePMC, *httptest.Server, *retryablehttp.Client) {
	t.Helper()
	const primaryHref = "repodata/0123-primary.xml.gz"
	withPkg := gz(t, primary("azure-cli", PackageName, "aadsshlogin-selinux"))
	f := &fakePMC{
		files: map[string][]byte{
			// AlmaLinux: its own folder carries aadsshlogin.
			"/almalinux/9/prod/repodata/repomd.xml":                     repomd(primaryHref),
			"/almalinux/9/prod/" + primaryHref:                          withPkg,
			"/microsoft/almalinux/9/prod/repodata/repomd.xml":           repomd("repodata/0123-primary.xml.zst"),
			"/microsoft/almalinux/9/prod/repodata/0123-primary.xml.zst": {0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0},
			// Rocky: the folder exists but has no aadsshlogin.
			"/rocky/9/prod/repodata/repomd.xml": repomd(primaryHref),
			"/rocky/9/prod/" + primaryHref:      gz(t, primary()),
			"/rocky/8/prod/repodata/repomd.xml": []byte("<html><body>It works!</body></html>"),
			// openSUSE: plain primary.xml behind an xml:base inside the
			// repository.
			"/opensuse/15/prod/repodata/repomd.xml": []byte(`<repomd xmlns="http://linux.duke.edu/metadata/repo"><data type="primary"><location xml:base="` +
				"BASE" + `/opensuse/15/prod/other/" href="primary.xml"/></data></repomd>`),
			"/opensuse/15/prod/other/primary.xml": primary("foo", PackageName),
			// CentOS 7: primary is missing.
			"/centos/7/prod/repodata/repomd.xml": repomd(primaryHref),
			// CentOS 8: primary is corrupt gzip.
			"/centos/8/prod/repodata/repomd.xml": repomd(primaryHref),
			"/centos/8/prod/" + primaryHref:      {0x1f, 0x8b, 8, 0, 1, 2, 3},
		},
		statuses: map[string]int{
			"/ol/":          http.StatusForbidden,
			"/almalinux/8/": http.StatusInternalServerError,
		},
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.files["/opensuse/15/prod/repodata/repomd.xml"] = bytes.ReplaceAll(f.files["/opensuse/15/prod/repodata/repomd.xml"], []byte("BASE"), []byte(srv.URL))
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 1
	c.RetryWaitMin, c.RetryWaitMax = 1, 1
	c.HTTPClient = srv.Client()
	return f, srv, c
}

func TestChooseFlavor(t *testing.T) {
	f, srv, client := newFakePMC(t)
	pub := Location{Base: srv.URL}
	usnat := Location{Base: srv.URL, Prefix: "/microsoft"}
	cases := []struct {
		name, id, version string
		loc               Location
		want, noteHas     string
	}{
		{"alma keeps", "almalinux", "9.4", pub, "almalinux", "provides aadsshlogin"},
		{"alma zstd cannot tell", "almalinux", "9.4", usnat, "almalinux", "zstd-compressed"},
		{"rocky empty falls back", "rocky", "9.3", pub, "rhel", "has no aadsshlogin package; using the rhel folder instead"},
		{"rocky garbage repomd", "rocky", "8.9", pub, "rhel", "no valid repository metadata"},
		{"ol 403", "ol", "8.10", pub, "rhel", "answered HTTP 403"},
		{"ol 404 with prefix", "ol", "9.4", Location{Base: srv.URL, Prefix: "/nothing"}, "rhel", "answered HTTP 404"},
		{"opensuse xml:base plain", "opensuse-leap", "15.5", pub, "opensuse", "provides aadsshlogin"},
		{"opensuse 42 404", "opensuse", "42.3", pub, "sles", "answered HTTP 404"},
		{"centos primary missing", "centos", "7", pub, "rhel", "answers HTTP 404"},
		{"centos corrupt gzip", "centos", "8", pub, "rhel", "corrupt package list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := platform(t, c.id, c.version, "", "amd64")
			got, note, err := ChooseFlavor(context.Background(), client, p, c.loc)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want || !strings.Contains(note, c.noteHas) {
				t.Fatalf("got %q (%s)", got, note)
			}
		})
	}

	// No fallback: no request at all.
	f.mu.Lock()
	before := len(f.requests)
	f.mu.Unlock()
	for _, p := range []struct{ id, v, codename string }{{"rhel", "9.4", ""}, {"ubuntu", "22.04", "jammy"}, {"sles", "15.5", ""}, {"azurelinux", "3.0", ""}} {
		plat := platform(t, p.id, p.v, p.codename, "amd64")
		got, _, err := ChooseFlavor(context.Background(), nil, plat, pub)
		if err != nil || got != plat.Flavor {
			t.Fatalf("%s: %q %v", p.id, got, err)
		}
	}
	f.mu.Lock()
	after := len(f.requests)
	f.mu.Unlock()
	if after != before {
		t.Fatal("ChooseFlavor sent requests for a platform without fallback")
	}
}

func TestChooseFlavorUnreachable(t *testing.T) {
	_, srv, client := newFakePMC(t)
	p := platform(t, "almalinux", "8.9", "", "amd64")
	_, _, err := ChooseFlavor(context.Background(), client, p, Location{Base: srv.URL})
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Code != failure.RepositoryUnreachable {
		t.Fatalf("got %v", err)
	}
	wantURL := srv.URL + "/almalinux/8/prod/repodata/repomd.xml"
	if !strings.Contains(fe.Msg, "Cannot access "+wantURL+": HTTP 500.") || !strings.Contains(fe.Msg, "port 443") {
		t.Fatalf("message %q", fe.Msg)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, _, err = ChooseFlavor(context.Background(), client, platform(t, "rocky", "9.3", "", "amd64"), Location{Base: "https://" + addr})
	if !errors.As(err, &fe) || fe.Code != failure.RepositoryUnreachable || !strings.Contains(fe.Msg, "connection refused") {
		t.Fatalf("got %v", err)
	}
}

func TestListsPackage(t *testing.T) {
	cases := []struct {
		in    string
		found bool
		fails bool
	}{
		{string(primary(PackageName)), true, false},
		{string(primary("aadsshlogin-selinux")), false, false},
		{`<metadata><package><format><name>aadsshlogin</name></format></package></metadata>`, false, false},
		{`<other/>`, false, true},
		{``, false, true},
		{`<metadata><package><name>x</name>`, false, true},
	}
	for _, c := range cases {
		found, err := listsPackage(strings.NewReader(c.in), PackageName)
		if found != c.found || (err != nil) != c.fails {
			t.Errorf("%q: %v %v", c.in, found, err)
		}
	}
}
