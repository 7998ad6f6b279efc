package repo

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/throttle"
)

// PackageName is the package whose presence decides a derivative's folder.
const PackageName = "aadsshlogin"

const (
	maxRepomdSize = 4 << 20
	// maxCompressedList bounds a package list as downloaded, and
	// maxListSize the same list decompressed (a few megabytes of gzip can
	// expand to gigabytes). Both are streamed, so they bound time;
	// maxTokenSize bounds memory: the longest text run or markup the
	// parsers hold at once. PMC's largest lists are tens of megabytes.
	maxCompressedList = 256 << 20
	maxListSize       = 1 << 30
	maxTokenSize      = 1 << 20
)

// ChooseFlavor decides the packages.microsoft.com folder for p. Without a
// fallback folder it returns p.Flavor and sends nothing. Otherwise it reads
// the derivative's repository metadata and falls back when the folder is
// forbidden or missing (Oracle Linux answers 403), its metadata is unusable,
// or its package list lacks aadsshlogin (Rocky's folder exists but is
// empty): the shipped extension failed in all these cases. When the list
// cannot be read (zstd or xz compression) it keeps the flavor. Statuses
// other than 200/403/404 and network errors are RepositoryUnreachable
// failures. note says in one sentence what was decided, for the log.
func ChooseFlavor(ctx context.Context, client *retryablehttp.Client, p distro.Platform, loc Location) (flavor string, note string, err error) {
	if p.FallbackFlavor == "" {
		return p.Flavor, fmt.Sprintf("using the %s folder (no alternative for %s)", p.Flavor, p.OS.ID), nil
	}
	if client == nil {
		return "", "", errors.New("repo.ChooseFlavor: nil HTTP client")
	}
	base := fmt.Sprintf("%s/%s/%s/prod/", loc.root(), p.Flavor, p.Major)
	pr, err := probeRPM(ctx, client, base)
	if err != nil {
		return "", "", err
	}
	switch pr.verdict {
	case offered, unreadable:
		return p.Flavor, fmt.Sprintf("%s %s; using the %s folder", base, pr.why, p.Flavor), nil
	}
	return p.FallbackFlavor, fmt.Sprintf("%s %s; using the %s folder instead", base, pr.why, p.FallbackFlavor), nil
}

// verdict is what a probe learnt about a repository and aadsshlogin.
type verdict int8

const (
	offered    verdict = iota // the package list names aadsshlogin
	notOffered                // the repository is missing, forbidden, broken or lacks the package
	unreadable                // the list exists but this handler cannot read it (zstd, xz)
)

// probe is a verdict and the reason, as a phrase following the URL
// ("answered HTTP 404", "has no aadsshlogin package").
type probe struct {
	verdict verdict
	why     string
}

// probeRPM reads an rpm-md repository's metadata at base (ending in "/")
// and says whether it offers aadsshlogin. Only transport failures and
// statuses other than 200/403/404 are errors. The metadata is not signed
// at this point (dnf checks it later), so nothing in it may send a request
// off base, and every read is bounded.
func probeRPM(ctx context.Context, client *retryablehttp.Client, base string) (probe, error) {
	repomdURL := base + "repodata/repomd.xml"
	resp, err := get(ctx, client, repomdURL)
	if err != nil {
		return probe{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return probe{notOffered, fmt.Sprintf("answered HTTP %d", resp.StatusCode)}, nil
	default:
		return probe{}, unreachable(repomdURL, throttle.Answer(resp.StatusCode), fmt.Errorf("GET %s: %s", repomdURL, resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRepomdSize+1))
	if err != nil {
		return probe{}, unreachable(repomdURL, "the connection failed during the download ("+httpclient.Reason(err)+")", err)
	}
	href, err := primaryLocation(body)
	if err != nil || len(body) > maxRepomdSize {
		// A 200 that is not metadata: the folder cannot serve packages.
		return probe{notOffered, "has no valid repository metadata"}, nil
	}
	primaryURL, err := underBase(base, href)
	if err != nil {
		return probe{notOffered, "has repository metadata that points outside the repository (" + err.Error() + ")"}, nil
	}

	presp, err := get(ctx, client, primaryURL)
	if err != nil {
		return probe{}, err
	}
	defer presp.Body.Close()
	switch presp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return probe{notOffered, fmt.Sprintf("lists a package list that answers HTTP %d", presp.StatusCode)}, nil
	default:
		return probe{}, unreachable(primaryURL, throttle.Answer(presp.StatusCode), fmt.Errorf("GET %s: %s", primaryURL, presp.Status))
	}
	tracked := &trackingReader{r: io.LimitReader(presp.Body, maxCompressedList)}
	list, kind, err := decompress(tracked)
	if err != nil {
		if tracked.err != nil {
			return probe{}, unreachable(primaryURL, "the connection failed during the download ("+httpclient.Reason(tracked.err)+")", tracked.err)
		}
		if kind != "" {
			return probe{unreadable, fmt.Sprintf("has a %s-compressed package list this handler cannot read", kind)}, nil
		}
		return probe{notOffered, "has a corrupt package list"}, nil
	}
	found, err := listsPackage(bounded(list), PackageName)
	if tracked.err != nil {
		return probe{}, unreachable(primaryURL, "the connection failed during the download ("+httpclient.Reason(tracked.err)+")", tracked.err)
	}
	if err != nil {
		return probe{notOffered, "has a corrupt package list (" + err.Error() + ")"}, nil
	}
	if !found {
		return probe{notOffered, "has no " + PackageName + " package"}, nil
	}
	return probe{offered, "provides " + PackageName}, nil
}

// underBase resolves a location from unsigned metadata against base and
// refuses anything that leaves it: another scheme, host or port, or a path
// outside base's folder (an absolute href or xml:base would otherwise send
// the next request anywhere).
func underBase(base string, ref *url.URL) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parsing %s: %w", base, err)
	}
	u := b.ResolveReference(ref)
	if u.Scheme != b.Scheme || u.Host != b.Host || u.User != nil {
		return "", fmt.Errorf("%s is on another host", u.Redacted())
	}
	if !strings.HasPrefix(u.EscapedPath(), b.EscapedPath()) {
		return "", fmt.Errorf("%s is outside %s", u.EscapedPath(), b.EscapedPath())
	}
	return u.String(), nil
}

func unreachable(u, reason string, cause error) error {
	host := u
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		host = pu.Host
	}
	return failure.New(failure.RepositoryUnreachable, cause,
		"Cannot access %s: %s. Make sure the VM can reach %s on port 443 (check firewalls and proxies).", u, reason, host)
}

// get sends a GET with the caller's client settings; exhausted retries
// return the last response so the status can be reported.
func get(ctx context.Context, c *retryablehttp.Client, u string) (*http.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, unreachable(u, "invalid URL", err)
	}
	pc := httpclient.Passthrough(c)
	resp, err := pc.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, unreachable(u, httpclient.Reason(err), err)
	}
	return resp, nil
}

// primaryLocation finds the "primary" package list in repomd.xml.
func primaryLocation(repomd []byte) (*url.URL, error) {
	var doc struct {
		XMLName xml.Name `xml:"repomd"`
		Data    []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href  string     `xml:"href,attr"`
				Attrs []xml.Attr `xml:",any,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(repomd, &doc); err != nil {
		return nil, fmt.Errorf("parsing repomd.xml: %w", err)
	}
	for _, d := range doc.Data {
		if d.Type != "primary" || d.Location.Href == "" {
			continue
		}
		href, err := url.Parse(d.Location.Href)
		if err != nil {
			return nil, fmt.Errorf("primary location: %w", err)
		}
		// createrepo's --baseurl writes xml:base; honour it.
		for _, a := range d.Location.Attrs {
			if a.Name.Local == "base" && a.Value != "" {
				xb, err := url.Parse(a.Value)
				if err != nil {
					return nil, fmt.Errorf("primary xml:base: %w", err)
				}
				if !xb.IsAbs() {
					break
				}
				if !strings.HasSuffix(xb.Path, "/") {
					xb.Path += "/"
				}
				href = xb.ResolveReference(href)
			}
		}
		return href, nil
	}
	return nil, errors.New("repomd.xml lists no primary data")
}

// trackingReader remembers a transport error, so a dropped connection is
// reported as such rather than as corrupt metadata.
type trackingReader struct {
	r   io.Reader
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.err = err
	}
	return n, err
}

// decompress recognises the package list's compression by its magic bytes.
// For formats the standard library cannot read it returns their name and an
// error.
func decompress(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(6)
	if err != nil && len(magic) == 0 {
		return nil, "", fmt.Errorf("empty package list: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("gzip: %w", err)
		}
		return zr, "", nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), "", nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, "zstd", errors.New("zstd-compressed package list")
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, "xz", errors.New("xz-compressed package list")
	}
	return br, "", nil
}

// listsPackage streams primary.xml and reports whether a <package> has the
// given <name>. It stops at the first match.
func listsPackage(r io.Reader, name string) (bool, error) {
	dec := xml.NewDecoder(r)
	var stack []string
	sawMetadata := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !sawMetadata {
				return false, errors.New("no <metadata> element")
			}
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("parsing the package list: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				if t.Name.Local != "metadata" {
					return false, fmt.Errorf("unexpected root element <%s>", t.Name.Local)
				}
				sawMetadata = true
			}
			if t.Name.Local == "name" && len(stack) > 0 && stack[len(stack)-1] == "package" {
				var v string
				if err := dec.DecodeElement(&v, &t); err != nil {
					return false, fmt.Errorf("parsing the package list: %w", err)
				}
				if v == name {
					return true, nil
				}
				continue
			}
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
}
