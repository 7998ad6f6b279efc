package repo

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

// debPackages is a Packages index with the given package names.
func debPackages(names ...string) []byte {
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString("Package: " + n + "\nVersion: 1.0.031620001\nArchitecture: amd64\nFilename: pool/main/a/" + n + ".deb\n\n")
	}
	return b.Bytes()
}

// bomb is a gzip stream that expands to n zero bytes (a few kilobytes per
// hundred megabytes).
func bomb(t *testing.T, n int64, filler byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	chunk := bytes.Repeat([]byte{filler}, 1<<20)
	for n > 0 {
		c := chunk
		if n < int64(len(c)) {
			c = c[:n]
		}
		w.Write(c)
		n -= int64(len(c))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestOffers(t *testing.T) {
	f, srv, client := newFakePMC(t)
	const trixie = "/repos/microsoft-debian-trixie-prod/dists/trixie/main/binary-amd64/"
	const resolute = "/repos/microsoft-ubuntu-resolute-prod/dists/resolute/main/binary-amd64/"
	const questing = "/repos/microsoft-ubuntu-questing-prod/dists/questing/main/binary-amd64/"
	f.files[trixie+"Packages.gz"] = gz(t, debPackages("libmsquic", PackageName, "aadsshlogin-selinux"))
	f.files[resolute+"Packages"] = debPackages("aadsshlogin-selinux", "powershell") // only the plain list, no aadsshlogin
	f.files["/rhel/10/prod/repodata/repomd.xml"] = repomd("repodata/p.xml.gz")
	f.files["/rhel/10/prod/repodata/p.xml.gz"] = gz(t, primary(PackageName))
	f.files["/sles/16/prod/repodata/repomd.xml"] = repomd("repodata/p.xml.gz")
	f.files["/sles/16/prod/repodata/p.xml.gz"] = gz(t, primary("azure-cli"))
	f.statuses["/azurelinux/3.1/"] = http.StatusServiceUnavailable
	pub := Location{Base: srv.URL}

	cases := []struct {
		name, id, version, codename string
		offered                     bool
		why, url                    string
		code                        failure.Code
	}{
		{"debian 13 offers", "debian", "13", "trixie", true, "provides aadsshlogin", trixie + "Packages.gz", 0},
		{"ubuntu 26.04 lacks it (plain list)", "ubuntu", "26.04", "resolute", false, "has no aadsshlogin package", resolute + "Packages", 0},
		{"ubuntu 25.10 no repository", "ubuntu", "25.10", "questing", false, "answered HTTP 404", questing + "Packages", 0},
		{"rhel 10 offers", "rhel", "10.1", "", true, "provides aadsshlogin", "/rhel/10/prod/", 0},
		{"sles 16 lacks it", "sles", "16.0", "", false, "has no aadsshlogin package", "/sles/16/prod/", 0},
		{"rhel 11 no repository", "rhel", "11.0", "", false, "answered HTTP 404", "/rhel/11/prod/", 0},
		{"azure linux 3.1 unavailable", "azurelinux", "3.1", "", false, "", "", failure.RepositoryUnreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := platform(t, c.id, c.version, c.codename, "amd64")
			def, err := Build(p, pub, p.Flavor)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Offers(context.Background(), client, p, def)
			if c.code != 0 {
				if failure.CodeOf(err) != c.code {
					t.Fatalf("err %v, want code %d", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Offered != c.offered || got.Why != c.why || got.URL != srv.URL+c.url {
				t.Fatalf("got %+v, want offered=%v why=%q url=%q", got, c.offered, c.why, srv.URL+c.url)
			}
		})
	}
}

// TestProbeStaysOnTheRepository: the metadata is unsigned when it is read,
// so an absolute href or xml:base may not send the next request elsewhere
// (another host, or another folder of the same host).
func TestProbeStaysOnTheRepository(t *testing.T) {
	f, srv, client := newFakePMC(t)
	pkgs := gz(t, primary(PackageName))
	f.files["/elsewhere/p.xml.gz"] = pkgs
	for name, loc := range map[string]string{
		"absolute href, other host": `<location href="https://evil.example/p.xml.gz"/>`,
		"xml:base, other host":      `<location xml:base="https://evil.example/" href="p.xml.gz"/>`,
		"absolute href, same host":  `<location href="` + srv.URL + `/elsewhere/p.xml.gz"/>`,
		"dot-dot":                   `<location href="../../../elsewhere/p.xml.gz"/>`,
		"plain http":                `<location href="` + strings.Replace(srv.URL, "https:", "http:", 1) + `/rhel/10/prod/p.xml.gz"/>`,
	} {
		t.Run(name, func(t *testing.T) {
			f.files["/rhel/10/prod/repodata/repomd.xml"] = []byte(`<repomd><data type="primary">` + loc + `</data></repomd>`)
			f.mu.Lock()
			f.requests = nil
			f.mu.Unlock()
			pr, err := probeRPM(context.Background(), client, srv.URL+"/rhel/10/prod/")
			if err != nil {
				t.Fatal(err)
			}
			if pr.verdict != notOffered || !strings.Contains(pr.why, "points outside the repository") {
				t.Fatalf("got %+v", pr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if !slices.Equal(f.requests, []string{"/rhel/10/prod/repodata/repomd.xml"}) {
				t.Fatalf("requests %v: the probe followed the metadata off the repository", f.requests)
			}
		})
	}
}

// TestProbeBoundsHostileLists: an endless text run ends the read with a
// clear reason instead of exhausting memory (the total bound, which stops
// decompression bombs, is the same reader: TestBoundedReader).
func TestProbeBoundsHostileLists(t *testing.T) {
	f, srv, client := newFakePMC(t)
	// Text inside <metadata> without any markup: one endless token.
	endless := append([]byte(`<metadata><package><name>`), bytes.Repeat([]byte("a"), 3*maxTokenSize)...)
	f.files["/rhel/10/prod/repodata/repomd.xml"] = repomd("repodata/endless.xml")
	f.files["/rhel/10/prod/repodata/endless.xml"] = endless
	pr, err := probeRPM(context.Background(), client, srv.URL+"/rhel/10/prod/")
	if err != nil || pr.verdict != notOffered || !strings.Contains(pr.why, "longer than") {
		t.Fatalf("endless token: %+v, %v", pr, err)
	}

	// The apt index is bounded the same way: a gzip stream of one
	// endless line.
	offer, err := scanApt(bytes.NewReader(bomb(t, 4*maxTokenSize, 'x')), "u")
	if err != nil || offer.Offered || !strings.Contains(offer.Why, "corrupt package list") {
		t.Fatalf("apt long line: %+v, %v", offer, err)
	}
}

func TestBoundedReader(t *testing.T) {
	r := &boundedReader{r: strings.NewReader("ab\ncd<ef>"), left: 5}
	got, err := io.ReadAll(r)
	if string(got) != "ab\ncd" || err != errTooBig {
		t.Fatalf("total bound: %q, %v", got, err)
	}
	r = &boundedReader{r: bytes.NewReader(bytes.Repeat([]byte("y"), maxTokenSize+1)), left: maxListSize}
	if _, err := io.ReadAll(r); err != errTokenTooLong {
		t.Fatalf("token bound: %v", err)
	}
	r = &boundedReader{r: bytes.NewReader(bytes.Repeat([]byte("y\n"), maxTokenSize)), left: maxListSize}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("short lines: %v", err)
	}
	// A gzip bomb of short lines: decompression stops at the total bound.
	zr, err := gzip.NewReader(bytes.NewReader(bomb(t, 64<<20, '\n')))
	if err != nil {
		t.Fatal(err)
	}
	r = &boundedReader{r: zr, left: 8 << 20}
	if n, err := io.Copy(io.Discard, r); err != errTooBig || n != 8<<20 {
		t.Fatalf("bomb: read %d, %v", n, err)
	}
}

func FuzzListsDeb(f *testing.F) {
	f.Add([]byte("Package: aadsshlogin\n"), "aadsshlogin")
	f.Add([]byte("Package:aadsshlogin-selinux\nPackage:  aadsshlogin  \n"), "aadsshlogin")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		found, err := listsDeb(bytes.NewReader(data), name)
		if err != nil {
			return
		}
		// Oracle: some line is exactly "Package:" + name with spaces.
		want := false
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Package:"); ok && strings.TrimSpace(v) == name && name != "" {
				want = true
			}
		}
		if name != "" && found != want {
			t.Fatalf("listsDeb(%q, %q) = %v, want %v", data, name, found, want)
		}
	})
}
