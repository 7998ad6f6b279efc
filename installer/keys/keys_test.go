package keys

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/test/require"
)

const microsoftFP = "BC528686B50D79E339D3721CEB3E94ADBE1229CF"

// testKey is an OpenPGP key (RSA primary key, RSA encryption subkey, one
// user ID) made by the library, with valid self-signatures.
type testKey struct {
	*openpgp.Entity
	fp string
}

var testConfig = &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	e, err := openpgp.NewEntity("Test Key", "", "test@example.com", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{Entity: e, fp: strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))}
}

// public is the transferable public key, as Trust should write it.
func (k testKey) public(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := k.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// secret is the transferable secret key (unencrypted secret material).
func (k testKey) secret(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := k.SerializePrivateWithoutSigning(&b, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// secrets are the private RSA values of the primary key and the subkey.
func (k testKey) secrets(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, pk := range []*packet.PrivateKey{k.PrivateKey, k.Subkeys[0].PrivateKey} {
		priv, ok := pk.PrivateKey.(*rsa.PrivateKey)
		if !ok {
			t.Fatalf("private key is a %T", pk.PrivateKey)
		}
		out = append(out, priv.D.Bytes(), priv.Primes[0].Bytes(), priv.Primes[1].Bytes())
	}
	return out
}

func armored(t testing.TB, typ string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func serialize(t testing.TB, pkts ...interface{ Serialize(io.Writer) error }) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range pkts {
		if err := p.Serialize(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func wantFailure(t *testing.T, err error, code failure.Code, substr ...string) {
	t.Helper()
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Code != code {
		t.Fatalf("want %v failure, got %v", code.Name(), err)
	}
	for _, s := range substr {
		if !strings.Contains(fe.Msg, s) {
			t.Fatalf("message %q lacks %q", fe.Msg, s)
		}
	}
}

// packetsOf parses binary OpenPGP data into packets.
func packetsOf(t *testing.T, data []byte) []packet.Packet {
	t.Helper()
	var out []packet.Packet
	r := packet.NewReader(bytes.NewReader(data))
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("re-reading the output: %v", err)
		}
		out = append(out, p)
	}
}

func TestTrustMicrosoftKey(t *testing.T) {
	data, err := os.ReadFile("testdata/microsoft.asc")
	if err != nil {
		t.Fatal(err)
	}
	k, err := Trust(data, "https://packages.microsoft.com/keys/microsoft.asc", []string{"bc52 8686 b50d 79e3 39d3 721c eb3e 94ad be12 29cf"})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Fingerprints) != 1 || k.Fingerprints[0] != microsoftFP {
		t.Fatalf("fingerprints %v", k.Fingerprints)
	}
	if !bytes.HasPrefix(k.Armored, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("armored output: %s", k.Armored)
	}
	// The binary keyring is accepted back, and is stable.
	again, err := Trust(k.Binary, "binary", []string{microsoftFP})
	if err != nil {
		t.Fatalf("binary round trip: %v", err)
	}
	if len(again.Fingerprints) != 1 || again.Fingerprints[0] != microsoftFP ||
		!bytes.Equal(again.Binary, k.Binary) || !bytes.Equal(again.Armored, k.Armored) {
		t.Fatal("binary round trip changed the key")
	}
	rt, err := Trust(k.Armored, "armored output", []string{microsoftFP})
	if err != nil || !bytes.Equal(rt.Binary, k.Binary) {
		t.Fatalf("armored round trip: %v", err)
	}
	// Same packets as the published key (header formats may differ).
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil || len(el) != 1 {
		t.Fatalf("reading the published key: %v", err)
	}
	if got, want := len(packetsOf(t, k.Binary)), len(packetsOf(t, serialize(t, el[0]))); got != want {
		t.Fatalf("%d packets, want %d", got, want)
	}
}

func TestTrustArmoredAndBinary(t *testing.T) {
	k := newTestKey(t)
	pub := k.public(t)
	for name, in := range map[string][]byte{
		"binary":  pub,
		"armored": armored(t, openpgp.PublicKeyType, pub),
	} {
		got, err := Trust(in, name, []string{k.fp})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got.Fingerprints) != 1 || got.Fingerprints[0] != k.fp {
			t.Fatalf("%s: %v", name, got.Fingerprints)
		}
		if !bytes.Equal(got.Binary, pub) {
			t.Fatalf("%s: binary differs", name)
		}
		rt, err := Trust(got.Armored, "armored output", []string{k.fp})
		if err != nil || !bytes.Equal(rt.Binary, got.Binary) {
			t.Fatalf("%s: armored output does not round-trip: %v", name, err)
		}
	}
}

func TestTrustUnpinned(t *testing.T) {
	k := newTestKey(t)
	_, err := Trust(k.public(t), "https://mirror.example.com/keys/microsoft.asc", []string{microsoftFP})
	wantFailure(t, err, failure.UntrustedKey,
		"The signing key from https://mirror.example.com/keys/microsoft.asc has fingerprint "+k.fp+", which is not a trusted fingerprint ("+microsoftFP+")",
		"signingKeyFingerprints")
}

func TestTrustMixedKeyring(t *testing.T) {
	a, b, c := newTestKey(t), newTestKey(t), newTestKey(t)
	ring := append(append(append([]byte(nil), a.public(t)...), b.public(t)...), c.public(t)...)
	ring = append(ring, b.public(t)...) // duplicate is kept once
	got, err := Trust(ring, "ring", []string{strings.ToLower(c.fp), b.fp})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Fingerprints) != 2 || got.Fingerprints[0] != b.fp || got.Fingerprints[1] != c.fp {
		t.Fatalf("fingerprints %v", got.Fingerprints)
	}
	if !bytes.Equal(got.Binary, append(b.public(t), c.public(t)...)) {
		t.Fatal("binary keyring is not b+c")
	}
	aKey := a.PrimaryKey.PublicKey.(*rsa.PublicKey).N.Bytes()
	if bytes.Contains(got.Binary, aKey) {
		t.Fatal("unpinned key carried over")
	}
	// Two armored blocks in one file, one of them a private key block.
	two := append(armored(t, openpgp.PublicKeyType, a.public(t)), armored(t, openpgp.PrivateKeyType, c.secret(t))...)
	got, err = Trust(two, "two blocks", []string{c.fp, a.fp})
	if err != nil || len(got.Fingerprints) != 2 || got.Fingerprints[0] != a.fp || got.Fingerprints[1] != c.fp {
		t.Fatalf("two blocks: %v %v", got, err)
	}
	if !bytes.Equal(got.Binary, append(a.public(t), c.public(t)...)) {
		t.Fatal("two blocks: binary keyring is not a+c")
	}
	_, err = Trust(ring, "ring", []string{microsoftFP})
	wantFailure(t, err, failure.UntrustedKey, "fingerprints "+a.fp+", "+b.fp+", "+c.fp, "none of which")
}

func TestTrustDropsSecretMaterial(t *testing.T) {
	k := newTestKey(t)
	for name, in := range map[string][]byte{
		"binary":  k.secret(t),
		"armored": armored(t, openpgp.PrivateKeyType, k.secret(t)),
	} {
		got, err := Trust(in, name, []string{k.fp})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Binary, k.public(t)) {
			t.Fatalf("%s: output is not exactly the public key", name)
		}
		if !bytes.Contains(got.Armored, []byte("BEGIN PGP PUBLIC KEY BLOCK")) || bytes.Contains(got.Armored, []byte("PRIVATE")) {
			t.Fatalf("%s: armored output: %s", name, got.Armored)
		}
		for _, secret := range k.secrets(t) {
			if bytes.Contains(got.Binary, secret) {
				t.Fatalf("%s: secret material carried over", name)
			}
		}
		for _, p := range packetsOf(t, got.Binary) {
			if _, ok := p.(*packet.PrivateKey); ok {
				t.Fatalf("%s: secret key packet in output", name)
			}
		}
	}
}

func TestTrustRefusesBadSelfSignatures(t *testing.T) {
	k, other := newTestKey(t), newTestKey(t)
	id := k.PrimaryIdentity()
	sub := k.Subkeys[0]
	forged := packet.NewUserId("Mallory", "", "mallory@example.com")
	cases := map[string][]byte{
		// The user ID was changed after it was signed.
		"user ID": serialize(t, k.PrimaryKey, forged, id.SelfSignature),
		// A subkey bound by a signature over another subkey.
		"subkey binding": serialize(t, k.PrimaryKey, id.UserId, id.SelfSignature, other.Subkeys[0].PublicKey, sub.Sig),
		// A user ID certified only by someone else.
		"no self-signature": serialize(t, k.PrimaryKey, id.UserId, other.PrimaryIdentity().SelfSignature),
	}
	// A signature whose bytes were altered.
	tampered := k.public(t)
	tampered[len(tampered)-10] ^= 0xff
	cases["tampered"] = tampered
	for name, in := range cases {
		_, err := Trust(in, name, []string{k.fp})
		wantFailure(t, err, failure.UntrustedKey, "is not an OpenPGP public key")
		// Next to a valid key, the invalid one is skipped and so not trusted.
		_, err = Trust(append(other.public(t), in...), name, []string{k.fp})
		wantFailure(t, err, failure.UntrustedKey, "has fingerprint "+other.fp+", which is not a trusted fingerprint ("+k.fp+")")
	}
}

func TestTrustGarbage(t *testing.T) {
	k := newTestKey(t)
	pub := k.public(t)
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, k.Entity, strings.NewReader("data"), testConfig); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"blank":          []byte(" \n"),
		"text":           []byte("hello world"),
		"html":           []byte("<html><body>Proxy login required</body></html>"),
		"truncated":      pub[:len(pub)-5],
		"signature":      sig.Bytes(),
		"armored sig":    armored(t, "PGP SIGNATURE", sig.Bytes()),
		"bad armor":      []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		"partial len":    {0xc6, 0xe1, 1, 2},
		"key without id": serialize(t, k.PrimaryKey),
		"good then bad":  append(armored(t, openpgp.PublicKeyType, pub), "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"...),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Trust(in, "https://x/keys/microsoft.asc", []string{k.fp})
			wantFailure(t, err, failure.UntrustedKey, "is not an OpenPGP public key")
		})
	}
}

// TestKeyringWorksWithGpgv checks that apt (which runs gpgv with the
// signed-by= keyring) accepts signatures made by a key of the Binary output.
func TestKeyringWorksWithGpgv(t *testing.T) {
	require.Tools(t, "gpgv")
	gpgv, _ := exec.LookPath("gpgv")
	k, other := newTestKey(t), newTestKey(t)
	ring := append(other.public(t), k.secret(t)...)
	key, err := Trust(ring, "test", []string{k.fp})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyring, data, sigFile := filepath.Join(dir, "test.gpg"), filepath.Join(dir, "Release"), filepath.Join(dir, "Release.gpg")
	content := []byte("Origin: test\nSuite: stable\n")
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, k.Entity, bytes.NewReader(content), testConfig); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{keyring: key.Binary, data: content, sigFile: sig.Bytes()} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) error {
		cmd := exec.Command(gpgv, append([]string{"--homedir", dir, "--keyring", keyring}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+dir, "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		t.Logf("gpgv %s: %v\n%s", strings.Join(args, " "), err, out)
		return err
	}
	if err := run(sigFile, data); err != nil {
		t.Fatalf("gpgv rejects the signature: %v", err)
	}
	// And does not accept a signature by the unpinned key.
	sig.Reset()
	if err := openpgp.DetachSign(&sig, other.Entity, bytes.NewReader(content), testConfig); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigFile, sig.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(sigFile, data); err == nil {
		t.Fatal("gpgv accepts a signature by a key that is not pinned")
	}
}

func FuzzTrust(f *testing.F) {
	data, _ := os.ReadFile("testdata/microsoft.asc")
	f.Add(data)
	if el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data)); err == nil && len(el) == 1 {
		var b bytes.Buffer
		if el[0].Serialize(&b) == nil {
			f.Add(b.Bytes())
		}
	}
	f.Add([]byte{0x99, 0, 3, 4, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := Trust(in, "fuzz", []string{microsoftFP})
		if err != nil {
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Code != failure.UntrustedKey {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(k.Fingerprints) != 1 || k.Fingerprints[0] != microsoftFP || len(k.Binary) == 0 {
			t.Fatalf("success with fingerprints %v", k.Fingerprints)
		}
		for _, p := range packetsOf(t, k.Binary) {
			if _, ok := p.(*packet.PrivateKey); ok {
				t.Fatal("secret key packet in output")
			}
		}
	})
}

func testClient(hc *http.Client) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 0
	if hc != nil {
		c.HTTPClient = hc
	}
	return c
}

func TestFetch(t *testing.T) {
	key, _ := os.ReadFile("testdata/microsoft.asc")
	mux := http.NewServeMux()
	mux.HandleFunc("/keys/microsoft.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(key) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000000")
		w.Write(make([]byte, 5000000))
	})
	mux.HandleFunc("/huge-chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 40; i++ {
			w.Write(make([]byte, 64<<10))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	srv.StartTLS()
	defer srv.Close()
	ctx := context.Background()

	got, err := Fetch(ctx, testClient(srv.Client()), srv.URL+"/keys/microsoft.asc")
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("fetch: %v", err)
	}
	if _, err := Trust(got, srv.URL, []string{microsoftFP}); err != nil {
		t.Fatal(err)
	}

	_, err = Fetch(ctx, testClient(srv.Client()), srv.URL+"/missing")
	wantFailure(t, err, failure.RepositoryUnreachable, "Cannot download the signing key from "+srv.URL+"/missing: HTTP 404.", "port 443")

	retrying := testClient(srv.Client())
	retrying.RetryMax = 1
	retrying.RetryWaitMin, retrying.RetryWaitMax = 1, 1
	_, err = Fetch(ctx, retrying, srv.URL+"/broken")
	wantFailure(t, err, failure.RepositoryUnreachable, "HTTP 500")
	if retrying.ErrorHandler != nil {
		t.Fatal("caller's client was modified")
	}

	_, err = Fetch(ctx, testClient(srv.Client()), srv.URL+"/huge")
	wantFailure(t, err, failure.RepositoryUnreachable, "too big")
	_, err = Fetch(ctx, testClient(srv.Client()), srv.URL+"/huge-chunked")
	wantFailure(t, err, failure.RepositoryUnreachable, "too big")

	// The default client does not trust the test server's certificate.
	_, err = Fetch(ctx, testClient(nil), srv.URL+"/keys/microsoft.asc")
	wantFailure(t, err, failure.RepositoryUnreachable, "certificate verify failed")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Fetch(ctx, testClient(nil), "https://"+addr+"/keys/microsoft.asc")
	wantFailure(t, err, failure.RepositoryUnreachable, "connection refused")

	plain := httptest.NewServer(mux)
	defer plain.Close()
	_, err = Fetch(ctx, testClient(nil), "https://"+strings.TrimPrefix(plain.URL, "http://")+"/keys/microsoft.asc")
	wantFailure(t, err, failure.RepositoryUnreachable, "the server did not speak TLS")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Fetch(cctx, testClient(srv.Client()), srv.URL+"/keys/microsoft.asc")
	wantFailure(t, err, failure.RepositoryUnreachable, "cancelled")
}

// TestPublishedKeysMatchTheirFiles: the fingerprints compiled in are those
// of the key files packages.microsoft.com serves (testdata holds copies).
func TestPublishedKeysMatchTheirFiles(t *testing.T) {
	if len(Microsoft()) < 2 {
		t.Fatal("both of PMC's keys must be published")
	}
	for _, k := range Microsoft() {
		data, err := os.ReadFile("testdata/" + k.File)
		if err != nil {
			t.Fatal(err)
		}
		fps, err := FingerprintsOf(data)
		if err != nil || len(fps) != 1 || fps[0] != k.Fingerprint {
			t.Errorf("%s holds %v (%v), the table says %s", k.File, fps, err, k.Fingerprint)
		}
		if _, err := Trust(data, k.File, MicrosoftFingerprints()); err != nil {
			t.Errorf("%s is not trusted with the default pins: %v", k.File, err)
		}
	}
	if NewestFile() != "microsoft-2025.asc" || !IsPublishedFile("microsoft.asc") || IsPublishedFile("microsoft-2099.asc") {
		t.Error("NewestFile/IsPublishedFile disagree with the table")
	}
	// The copy of microsoft.asc fetched before June 2025 has SHA-1 binding
	// signatures but the same fingerprint: still the same key.
	old, err := os.ReadFile("testdata/microsoft-sha1-bindings.asc")
	if err != nil {
		t.Fatal(err)
	}
	if fps, err := FingerprintsOf(old); err != nil || len(fps) != 1 || fps[0] != microsoftFP {
		t.Errorf("old microsoft.asc: %v %v", fps, err)
	}
}

func TestFetchTrusted(t *testing.T) {
	ms, _ := os.ReadFile("testdata/microsoft.asc")
	ms2025, _ := os.ReadFile("testdata/microsoft-2025.asc")
	mirrorKey := newTestKey(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/keys/microsoft.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(ms) })
	mux.HandleFunc("/keys/microsoft-2025.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(ms2025) })
	mux.HandleFunc("/mirror/keys/microsoft.asc", func(w http.ResponseWriter, r *http.Request) {
		w.Write(armored(t, openpgp.PublicKeyType, mirrorKey.public(t)))
	})
	mux.HandleFunc("/forbidden/keys/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/junk/keys/microsoft.asc", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	ctx := context.Background()
	client := testClient(srv.Client())
	defaults := MicrosoftFingerprints()
	ms2025FP := "AA86F75E427A19DD33346403EE4D7792F748182B"

	// One required file: only that key.
	k, err := FetchTrusted(ctx, client, Source{Base: srv.URL, Files: []string{"microsoft-2025.asc"}, AllRequired: true}, defaults)
	if err != nil || !slices.Equal(k.Fingerprints, []string{ms2025FP}) {
		t.Fatalf("2025 key: %v %v", k, err)
	}
	// Both files: both keys, each in its own armored block (rpm --import
	// reads one key per block).
	k, err = FetchTrusted(ctx, client, Source{Base: srv.URL, Files: []string{"microsoft-2025.asc", "microsoft.asc"}}, defaults)
	if err != nil || !slices.Equal(k.Fingerprints, []string{ms2025FP, microsoftFP}) {
		t.Fatalf("both keys: %v %v", k, err)
	}
	if n := bytes.Count(k.Armored, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")); n != 2 {
		t.Errorf("%d armored blocks, want one per key", n)
	}
	if fps, err := FingerprintsOf(k.Binary); err != nil || !slices.Equal(fps, k.Fingerprints) {
		t.Errorf("binary keyring holds %v (%v)", fps, err)
	}
	// Only pinned keys are kept, even when the host serves more.
	k, err = FetchTrusted(ctx, client, Source{Base: srv.URL, Files: []string{"microsoft-2025.asc", "microsoft.asc"}}, []string{microsoftFP})
	if err != nil || !slices.Equal(k.Fingerprints, []string{microsoftFP}) {
		t.Fatalf("one pin: %v %v", k, err)
	}
	// A mirror that serves only its own microsoft.asc: the missing 2025
	// file is skipped, the mirror's pinned key is used.
	k, err = FetchTrusted(ctx, client, Source{Base: srv.URL + "/mirror", Files: []string{"microsoft-2025.asc", "microsoft.asc"}}, []string{mirrorKey.fp})
	if err != nil || !slices.Equal(k.Fingerprints, []string{mirrorKey.fp}) {
		t.Fatalf("mirror: %v %v", k, err)
	}
	// ... but a required file must be there.
	_, err = FetchTrusted(ctx, client, Source{Base: srv.URL + "/mirror", Files: []string{"microsoft-2025.asc"}, AllRequired: true}, defaults)
	wantFailure(t, err, failure.RepositoryUnreachable, "/mirror/keys/microsoft-2025.asc: HTTP 404")
	// Nothing served at all: the last answer is the error.
	_, err = FetchTrusted(ctx, client, Source{Base: srv.URL + "/forbidden", Files: []string{"microsoft-2025.asc", "microsoft.asc"}}, defaults)
	wantFailure(t, err, failure.RepositoryUnreachable, "HTTP 403")
	// Served keys, none pinned: 25 naming what was served and pinned.
	_, err = FetchTrusted(ctx, client, Source{Base: srv.URL + "/mirror", Files: []string{"microsoft.asc"}}, defaults)
	wantFailure(t, err, failure.UntrustedKey, mirrorKey.fp, microsoftFP, ms2025FP)
	// A file that is not a key names its URL.
	_, err = FetchTrusted(ctx, client, Source{Base: srv.URL + "/junk", Files: []string{"microsoft.asc"}}, defaults)
	wantFailure(t, err, failure.UntrustedKey, "/junk/keys/microsoft.asc is not an OpenPGP public key")
	if _, err := FetchTrusted(ctx, client, Source{Base: srv.URL}, defaults); err == nil {
		t.Error("no files accepted")
	}
}

// TestRPMImportsEveryArmoredKey: rpm reads one key per armored block, so a
// keyring of two keys must be two blocks; checked with the real rpm when
// it is installed.
func TestRPMImportsEveryArmoredKey(t *testing.T) {
	require.Tools(t, "rpm")
	ms, _ := os.ReadFile("testdata/microsoft.asc")
	ms2025, _ := os.ReadFile("testdata/microsoft-2025.asc")
	k, err := Trust(append(ms, ms2025...), "both", MicrosoftFingerprints())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "k.asc")
	if err := os.WriteFile(file, k.Armored, 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "db")
	for _, args := range [][]string{{"--initdb"}, {"--import", file}} {
		if out, err := exec.Command("rpm", append([]string{"--dbpath", db}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("rpm %v: %v: %s", args, err, out)
		}
	}
	out, err := exec.Command("rpm", "--dbpath", db, "-q", "gpg-pubkey", "--qf", "%{DESCRIPTION}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fps, err := FingerprintsOf(out); err != nil || !slices.Equal(fps, MicrosoftFingerprints()) {
		t.Fatalf("rpm imported %v (%v), want both keys", fps, err)
	}
}
