// Package keys downloads the repository signing key and keeps only the keys
// whose fingerprints are pinned, so a compromised mirror, proxy or DNS entry
// cannot make the package manager trust a key of its choosing.
//
// Keys are parsed with github.com/ProtonMail/go-crypto/openpgp, which also
// verifies their self-signatures; apt/rpm then verify the repository with
// the keyring written from the pinned keys.
package keys

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/httpclient"
	"github.com/aadsshlogin/handler/throttle"
)

// MaxKeySize bounds the key download; Microsoft's key is under 1 KiB.
const MaxKeySize = 1 << 20

// Key is the trusted subset of a downloaded keyring.
type Key struct {
	Fingerprints []string // upper-case hex primary-key fingerprints, in input order
	Armored      []byte   // ASCII-armored public keys (pinned ones only), one block per key
	Binary       []byte   // the same keys as a binary keyring (apt signed-by=)
}

// Fetch downloads the key at url with client, which the caller configures
// (proxy, TLS, retries). Every failure is a RepositoryUnreachable
// *failure.Error naming the URL and a short reason.
func Fetch(ctx context.Context, client *retryablehttp.Client, url string) ([]byte, error) {
	body, _, err := fetch(ctx, client, url)
	return body, err
}

// fetch is Fetch that also reports the HTTP status of a failed download
// (0 when there was no answer).
func fetch(ctx context.Context, client *retryablehttp.Client, url string) ([]byte, int, error) {
	if client == nil {
		return nil, 0, errors.New("keys.Fetch: nil HTTP client")
	}
	unreachable := func(reason string, cause error) error {
		return failure.New(failure.RepositoryUnreachable, cause,
			"Cannot download the signing key from %s: %s. Make sure the VM can reach it on port 443 (check firewalls and proxies).", url, reason)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, unreachable("invalid URL", err)
	}
	resp, err := httpclient.Passthrough(client).Do(req)
	if err != nil {
		return nil, 0, unreachable(httpclient.Reason(err), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, unreachable(throttle.Answer(resp.StatusCode), fmt.Errorf("GET %s: %s", url, resp.Status))
	}
	if resp.ContentLength > MaxKeySize {
		return nil, resp.StatusCode, unreachable(fmt.Sprintf("the response is too big (%d bytes, at most %d expected)", resp.ContentLength, MaxKeySize), nil)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxKeySize+1))
	if err != nil {
		return nil, resp.StatusCode, unreachable("the connection failed during the download ("+httpclient.Reason(err)+")", err)
	}
	if len(body) > MaxKeySize {
		return nil, resp.StatusCode, unreachable(fmt.Sprintf("the response is too big (more than %d bytes)", MaxKeySize), nil)
	}
	return body, resp.StatusCode, nil
}

// Source says which key files to download for one repository.
type Source struct {
	// Base is the repository host (<Base>/keys/<file>), no trailing slash.
	Base string
	// Files are the key file names under <Base>/keys/, most likely first.
	Files []string
	// AllRequired: every file must be served. Otherwise a file the base
	// does not have (HTTP 404 or 403) is skipped, as long as one is served:
	// a mirror need not carry every key PMC publishes.
	AllRequired bool
}

// URL is where file is downloaded from.
func (s Source) URL(file string) string { return s.Base + "/keys/" + file }

// FetchTrusted downloads the source's key files and keeps the keys whose
// fingerprints are pinned (Trust). Nothing is written: the caller decides
// what to do with the result.
func FetchTrusted(ctx context.Context, client *retryablehttp.Client, src Source, pins []string) (*Key, error) {
	if len(src.Files) == 0 {
		return nil, errors.New("keys.FetchTrusted: no key file")
	}
	var (
		ents    openpgp.EntityList
		served  []string
		missing error
	)
	for _, f := range src.Files {
		u := src.URL(f)
		body, status, err := fetch(ctx, client, u)
		if err != nil {
			if !src.AllRequired && (status == http.StatusNotFound || status == http.StatusForbidden) {
				missing = err
				continue
			}
			return nil, err
		}
		el, err := readKeyRings(body)
		if err != nil {
			return nil, notAKey(u, err)
		}
		ents = append(ents, el...)
		served = append(served, u)
	}
	if len(served) == 0 {
		return nil, missing
	}
	return trustEntities(ents, strings.Join(served, " and "), pins)
}

// Trust parses armored or binary OpenPGP keys and keeps those whose primary
// fingerprint is in pins. Keys whose self-signatures do not verify are
// refused. Only public keys are written out: secret key material in the
// input is never carried over.
func Trust(data []byte, source string, pins []string) (*Key, error) {
	ents, err := readKeyRings(data)
	if err != nil {
		return nil, notAKey(source, err)
	}
	return trustEntities(ents, source, pins)
}

func notAKey(source string, cause error) error {
	return failure.New(failure.UntrustedKey, cause,
		"The signing key from %s is not an OpenPGP public key. Check that the URL serves the repository's public key.", source)
}

// trustEntities keeps the pinned keys of ents (see Trust).
func trustEntities(ents openpgp.EntityList, source string, pins []string) (*Key, error) {
	pinned := map[string]bool{}
	normPins := make([]string, 0, len(pins))
	for _, p := range pins {
		n := strings.ToUpper(strings.ReplaceAll(p, " ", ""))
		if n != "" && !pinned[n] {
			pinned[n] = true
			normPins = append(normPins, n)
		}
	}
	key := &Key{}
	var bin bytes.Buffer
	seen := map[string]bool{}
	var others []string
	var kept []*openpgp.Entity
	for _, e := range ents {
		fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
		if !pinned[fp] {
			others = append(others, fp)
			continue
		}
		if seen[fp] {
			continue
		}
		seen[fp] = true
		kept = append(kept, e)
		// Serialize writes the public parts only, even for a secret key.
		if err := e.Serialize(&bin); err != nil {
			return nil, fmt.Errorf("serializing signing key %s: %w", fp, err)
		}
		key.Fingerprints = append(key.Fingerprints, fp)
	}
	if len(key.Fingerprints) == 0 {
		noun, verb := "fingerprint", "which is not a trusted fingerprint"
		if len(others) > 1 {
			noun, verb = "fingerprints", "none of which is a trusted fingerprint"
		}
		return nil, failure.New(failure.UntrustedKey, nil,
			"The signing key from %s has %s %s, %s (%s). If you use a mirror with its own key, add its fingerprint to signingKeyFingerprints in the extension settings.",
			source, noun, strings.Join(others, ", "), verb, strings.Join(normPins, ", "))
	}
	key.Binary = bin.Bytes()
	// One armored block per key: rpm --import reads only the first key of
	// a block, but every block of a file.
	var arm bytes.Buffer
	for _, e := range kept {
		var one bytes.Buffer
		if err := e.Serialize(&one); err != nil {
			return nil, fmt.Errorf("serializing signing key: %w", err)
		}
		w, err := armor.Encode(&arm, openpgp.PublicKeyType, nil)
		if err != nil {
			return nil, fmt.Errorf("armoring the signing key: %w", err)
		}
		if _, err := w.Write(one.Bytes()); err != nil {
			return nil, fmt.Errorf("armoring the signing key: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("armoring the signing key: %w", err)
		}
		arm.WriteByte('\n')
	}
	key.Armored = arm.Bytes()
	return key, nil
}

// FingerprintsOf returns the primary-key fingerprints (upper-case hex) of
// the keys in data, armored or binary, whether pinned or not: it tells
// which key a file or an rpm database entry holds.
func FingerprintsOf(data []byte) ([]string, error) {
	ents, err := readKeyRings(data)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)))
	}
	return out, nil
}

// readKeyRings parses every armored key block in data (a file may hold
// several), or data itself as a binary keyring when it is not armored. The
// library checks the self-signatures and skips keys whose signatures do not
// verify; an input without any valid key is an error.
func readKeyRings(data []byte) (openpgp.EntityList, error) {
	const begin, end = "-----BEGIN PGP ", "-----END PGP "
	var ents openpgp.EntityList
	if !bytes.Contains(data, []byte(begin)) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		ents = el
	}
	for rest := data; ; {
		i := bytes.Index(rest, []byte(begin))
		if i < 0 {
			break
		}
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(rest[i:]))
		if err != nil {
			return nil, err
		}
		ents = append(ents, el...)
		j := bytes.Index(rest[i:], []byte(end))
		if j < 0 {
			break
		}
		rest = rest[i+j+len(end):]
	}
	if len(ents) == 0 {
		return nil, errors.New("no OpenPGP key found")
	}
	return ents, nil
}
