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
)

// PackageName is the package whose presence decides a derivative's folder.
const PackageName = "aadsshlogin"

const (
	maxRepomdSize = 4 << 20
	// maxPrimarySize bounds the decompressed package list we scan (it is
	// streamed, so this limits time, not memory).
	maxPrimarySize = 1 << 30
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
	fallback := func(why string) (string, string, error) {
		return p.FallbackFlavor, fmt.Sprintf("%s %s; using the %s folder instead", base, why, p.FallbackFlavor), nil
	}
	keep := func(why string) (string, string, error) {
		return p.Flavor, fmt.Sprintf("%s %s; using the %s folder", base, why, p.Flavor), nil
	}

	repomdURL := base + "repodata/repomd.xml"
	resp, err := get(ctx, client, repomdURL)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return fallback(fmt.Sprintf("answered HTTP %d", resp.StatusCode))
	default:
		return "", "", unreachable(repomdURL, fmt.Sprintf("HTTP %d", resp.StatusCode), fmt.Errorf("GET %s: %s", repomdURL, resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRepomdSize+1))
	if err != nil {
		return "", "", unreachable(repomdURL, "the connection failed during the download ("+httpclient.Reason(err)+")", err)
	}
	href, err := primaryLocation(body)
	if err != nil || len(body) > maxRepomdSize {
		// A 200 that is not metadata: the folder cannot serve packages.
		return fallback("has no valid repository metadata")
	}
	baseURL, err := url.Parse(base)
	if err != nil {
		return "", "", fmt.Errorf("parsing %s: %w", base, err)
	}
	primaryURL := baseURL.ResolveReference(href).String()

	presp, err := get(ctx, client, primaryURL)
	if err != nil {
		return "", "", err
	}
	defer presp.Body.Close()
	switch presp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return fallback(fmt.Sprintf("lists a package list that answers HTTP %d", presp.StatusCode))
	default:
		return "", "", unreachable(primaryURL, fmt.Sprintf("HTTP %d", presp.StatusCode), fmt.Errorf("GET %s: %s", primaryURL, presp.Status))
	}
	tracked := &trackingReader{r: presp.Body}
	list, kind, err := decompress(tracked)
	if err != nil {
		if tracked.err != nil {
			return "", "", unreachable(primaryURL, "the connection failed during the download ("+httpclient.Reason(tracked.err)+")", tracked.err)
		}
		if kind != "" {
			return keep(fmt.Sprintf("has a %s-compressed package list this handler cannot read", kind))
		}
		return fallback("has a corrupt package list")
	}
	found, err := listsPackage(io.LimitReader(list, maxPrimarySize), PackageName)
	if tracked.err != nil {
		return "", "", unreachable(primaryURL, "the connection failed during the download ("+httpclient.Reason(tracked.err)+")", tracked.err)
	}
	if err != nil {
		return fallback("has a corrupt package list")
	}
	if !found {
		return fallback("has no " + PackageName + " package")
	}
	return keep("provides " + PackageName)
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
