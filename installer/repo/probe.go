package repo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/throttle"
)

// Offer is what a repository said about aadsshlogin before anything was
// written.
type Offer struct {
	Offered bool
	// URL is what was asked (the package list or the metadata).
	URL string
	// Why completes "<URL> …" in one phrase: "answered HTTP 404", "has no
	// aadsshlogin package", "provides aadsshlogin".
	Why string
}

// Offers asks the repository of def whether it offers aadsshlogin for p,
// reading its (unsigned) package list: the package manager checks the
// signatures later, and nothing here is written or trusted beyond this
// answer. A missing, forbidden or broken repository is an Offer with
// Offered false; only transport failures and unexpected statuses are
// errors (RepositoryUnreachable). A list this handler cannot read (zstd,
// xz) counts as offered: the package manager will tell.
func Offers(ctx context.Context, client *retryablehttp.Client, p distro.Platform, def Definition) (Offer, error) {
	if client == nil {
		return Offer{}, errors.New("repo.Offers: nil HTTP client")
	}
	if p.PackageManager == distro.Apt {
		return offersApt(ctx, client, p, def.RepoURL)
	}
	base := def.RepoURL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	pr, err := probeRPM(ctx, client, base)
	if err != nil {
		return Offer{}, err
	}
	return Offer{Offered: pr.verdict != notOffered, URL: base, Why: pr.why}, nil
}

// offersApt reads dists/<codename>/main/binary-<arch>/Packages(.gz) under
// the repository and looks for a "Package: aadsshlogin" stanza. PMC serves
// both spellings; the compressed one is tried first.
func offersApt(ctx context.Context, client *retryablehttp.Client, p distro.Platform, repoURL string) (Offer, error) {
	if !safeToken(p.Codename) || !safeToken(p.Arch) {
		return Offer{}, fmt.Errorf("invalid apt codename %q or architecture %q", p.Codename, p.Arch)
	}
	dir := fmt.Sprintf("%s/dists/%s/main/binary-%s/", strings.TrimSuffix(repoURL, "/"), p.Codename, p.Arch)
	var last Offer
	for _, name := range []string{"Packages.gz", "Packages"} {
		u := dir + name
		resp, err := get(ctx, client, u)
		if err != nil {
			return Offer{}, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound, http.StatusForbidden:
			resp.Body.Close()
			last = Offer{URL: u, Why: fmt.Sprintf("answered HTTP %d", resp.StatusCode)}
			continue
		default:
			resp.Body.Close()
			return Offer{}, unreachable(u, throttle.Answer(resp.StatusCode), fmt.Errorf("GET %s: %s", u, resp.Status))
		}
		offer, err := scanApt(resp.Body, u)
		resp.Body.Close()
		return offer, err
	}
	return last, nil
}

// scanApt reads one Packages index (gzip or plain) from body.
func scanApt(body io.Reader, u string) (Offer, error) {
	tracked := &trackingReader{r: io.LimitReader(body, maxCompressedList)}
	list, kind, err := decompress(tracked)
	if err == nil {
		var found bool
		found, err = listsDeb(bounded(list), PackageName)
		if err == nil && tracked.err == nil {
			if found {
				return Offer{Offered: true, URL: u, Why: "provides " + PackageName}, nil
			}
			return Offer{URL: u, Why: "has no " + PackageName + " package"}, nil
		}
	}
	if tracked.err != nil {
		return Offer{}, unreachable(u, "the connection failed during the download ("+httpclient.Reason(tracked.err)+")", tracked.err)
	}
	if kind != "" {
		return Offer{Offered: true, URL: u, Why: fmt.Sprintf("has a %s-compressed package list this handler cannot read", kind)}, nil
	}
	return Offer{URL: u, Why: "has a corrupt package list (" + err.Error() + ")"}, nil
}

// listsDeb reports whether a Debian Packages index has a stanza for name.
func listsDeb(r io.Reader, name string) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxTokenSize)
	want := []byte(name)
	for sc.Scan() {
		line := sc.Bytes()
		v, ok := bytes.CutPrefix(line, []byte("Package:"))
		if ok && bytes.Equal(bytes.TrimSpace(v), want) {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("reading the package list: %w", err)
	}
	return false, nil
}

// errTooBig and errTokenTooLong end a read of hostile metadata.
var (
	errTooBig       = fmt.Errorf("the package list is larger than %d bytes decompressed", maxListSize)
	errTokenTooLong = fmt.Errorf("the package list has a line or text longer than %d bytes", maxTokenSize)
)

// bounded limits a decompressed package list: at most maxListSize bytes
// in all, and at most maxTokenSize bytes between two line breaks or markup
// delimiters, so that neither a decompression bomb nor one endless text
// run can exhaust a small VM's memory.
func bounded(r io.Reader) io.Reader { return &boundedReader{r: r, left: maxListSize} }

type boundedReader struct {
	r    io.Reader
	left int64 // bytes still allowed
	run  int   // bytes since the last delimiter
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	for _, c := range p[:n] {
		if c == '\n' || c == '<' || c == '>' {
			b.run = 0
			continue
		}
		b.run++
		if b.run > maxTokenSize {
			return n, errTokenTooLong
		}
	}
	return n, err
}
