package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/failure"
)

const microsoftFP = "BC528686B50D79E339D3721CEB3E94ADBE1229CF"

// testKey is an RSA OpenPGP key built in the test (packets only; the
// signatures are placeholders because Trust does not verify them).
type testKey struct {
	priv   *rsa.PrivateKey
	pub    []byte // public key packet body
	sec    []byte // secret key packet body
	subPub []byte
	subSec []byte
	fp     string
}

func mpi(n *big.Int) []byte {
	b := n.Bytes()
	return append(binary.BigEndian.AppendUint16(nil, uint16(n.BitLen())), b...)
}

func keyBodies(t *testing.T, created uint32) (*rsa.PrivateKey, []byte, []byte) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := []byte{4}
	pub = binary.BigEndian.AppendUint32(pub, created)
	pub = append(pub, 1)
	pub = append(pub, mpi(priv.N)...)
	pub = append(pub, mpi(big.NewInt(int64(priv.E)))...)
	sec := append([]byte(nil), pub...)
	sec = append(sec, 0) // unencrypted secret material follows
	secret := append(mpi(priv.D), mpi(priv.Primes[0])...)
	secret = append(secret, mpi(priv.Primes[1])...)
	secret = append(secret, mpi(new(big.Int).ModInverse(priv.Primes[0], priv.Primes[1]))...)
	var sum uint16
	for _, c := range secret {
		sum += uint16(c)
	}
	sec = append(sec, secret...)
	sec = binary.BigEndian.AppendUint16(sec, sum)
	return priv, pub, sec
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	priv, pub, sec := keyBodies(t, 1700000000)
	_, subPub, subSec := keyBodies(t, 1700000001)
	fp, err := fingerprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, pub: pub, sec: sec, subPub: subPub, subSec: subSec, fp: fp}
}

func fakeSig() []byte { return []byte{4, 0x13, 1, 8, 0, 0, 0, 0, 0xab, 0xcd, 0, 1, 0} }

func (k testKey) public() []byte {
	var b bytes.Buffer
	writePacket(&b, tagPublicKey, k.pub)
	writePacket(&b, tagUserID, []byte("Test Key <test@example.com>"))
	writePacket(&b, tagSignature, fakeSig())
	writePacket(&b, tagPublicSubkey, k.subPub)
	writePacket(&b, tagSignature, fakeSig())
	return b.Bytes()
}

func (k testKey) secret() []byte {
	var b bytes.Buffer
	writePacket(&b, tagSecretKey, k.sec)
	writePacket(&b, tagUserID, []byte("Test Key <test@example.com>"))
	writePacket(&b, tagSignature, fakeSig())
	writePacket(&b, tagTrust, []byte{0, 0})
	writePacket(&b, tagSecretSubkey, k.subSec)
	writePacket(&b, tagSignature, fakeSig())
	return b.Bytes()
}

func armored(t *testing.T, typ string, data []byte) []byte {
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
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var orig bytes.Buffer
	orig.ReadFrom(block.Body)
	// gpg writes old-format headers, as we do: the keyring is byte-identical.
	if !bytes.Equal(k.Binary, orig.Bytes()) {
		t.Fatal("binary keyring differs from the published key")
	}
	again, err := Trust(k.Binary, "binary", []string{microsoftFP})
	if err != nil || !bytes.Equal(again.Binary, k.Binary) || !bytes.Equal(again.Armored, k.Armored) {
		t.Fatalf("binary round trip: %v", err)
	}
	if !bytes.HasPrefix(k.Armored, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("armored output: %s", k.Armored)
	}
}

func TestTrustArmoredAndBinary(t *testing.T) {
	k := newTestKey(t)
	for name, in := range map[string][]byte{
		"binary":  k.public(),
		"armored": armored(t, publicKeyBlock, k.public()),
	} {
		got, err := Trust(in, name, []string{k.fp})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got.Fingerprints) != 1 || got.Fingerprints[0] != k.fp {
			t.Fatalf("%s: %v", name, got.Fingerprints)
		}
		if !bytes.Equal(got.Binary, k.public()) {
			t.Fatalf("%s: binary differs", name)
		}
		rt, err := Trust(got.Armored, "armored output", []string{k.fp})
		if err != nil || !bytes.Equal(rt.Binary, got.Binary) {
			t.Fatalf("%s: armored output does not round-trip: %v", name, err)
		}
	}
}

func TestTrustNewFormatHeaders(t *testing.T) {
	k := newTestKey(t)
	var b bytes.Buffer
	for _, p := range []packet{{tagPublicKey, k.pub}, {tagUserID, []byte("x")}, {tagUserAttribute, bytes.Repeat([]byte{1}, 300)}} {
		b.WriteByte(0xc0 | p.tag)
		n := len(p.body)
		if n < 192 {
			b.WriteByte(byte(n))
		} else {
			b.WriteByte(0xff)
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
		}
		b.Write(p.body)
	}
	got, err := Trust(b.Bytes(), "new format", []string{k.fp})
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := readPackets(got.Binary)
	if err != nil || len(pkts) != 3 || pkts[2].tag != tagUserAttribute || len(pkts[2].body) != 300 {
		t.Fatalf("re-read: %v %v", pkts, err)
	}
}

func TestTrustUnpinned(t *testing.T) {
	k := newTestKey(t)
	_, err := Trust(k.public(), "https://mirror.example.com/keys/microsoft.asc", []string{microsoftFP})
	wantFailure(t, err, failure.UntrustedKey,
		"The signing key from https://mirror.example.com/keys/microsoft.asc has fingerprint "+k.fp+", which is not a trusted fingerprint ("+microsoftFP+")",
		"signingKeyFingerprints")
}

func TestTrustMixedKeyring(t *testing.T) {
	a, b, c := newTestKey(t), newTestKey(t), newTestKey(t)
	ring := append(append(append([]byte(nil), a.public()...), b.public()...), c.public()...)
	ring = append(ring, b.public()...) // duplicate is kept once
	got, err := Trust(ring, "ring", []string{strings.ToLower(c.fp), b.fp})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Fingerprints) != 2 || got.Fingerprints[0] != b.fp || got.Fingerprints[1] != c.fp {
		t.Fatalf("fingerprints %v", got.Fingerprints)
	}
	if !bytes.Equal(got.Binary, append(b.public(), c.public()...)) {
		t.Fatal("binary keyring is not b+c")
	}
	if bytes.Contains(got.Binary, a.priv.N.Bytes()) {
		t.Fatal("unpinned key carried over")
	}
	// Two armored blocks in one file.
	two := append(armored(t, publicKeyBlock, a.public()), armored(t, publicKeyBlock, c.public())...)
	got, err = Trust(two, "two blocks", []string{c.fp})
	if err != nil || len(got.Fingerprints) != 1 || got.Fingerprints[0] != c.fp {
		t.Fatalf("two blocks: %v %v", got, err)
	}
	_, err = Trust(ring, "ring", []string{microsoftFP})
	wantFailure(t, err, failure.UntrustedKey, "fingerprints "+a.fp+", "+b.fp, "none of which")
}

func TestTrustDropsSecretMaterial(t *testing.T) {
	k := newTestKey(t)
	for name, in := range map[string][]byte{
		"binary":  k.secret(),
		"armored": armored(t, "PGP PRIVATE KEY BLOCK", k.secret()),
	} {
		got, err := Trust(in, name, []string{k.fp})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Binary, k.public()) {
			t.Fatalf("%s: output is not exactly the public key", name)
		}
		for _, secret := range [][]byte{k.priv.D.Bytes(), k.priv.Primes[0].Bytes(), k.priv.Primes[1].Bytes()} {
			if bytes.Contains(got.Binary, secret) || bytes.Contains(got.Armored, secret) {
				t.Fatalf("%s: secret material carried over", name)
			}
		}
		pkts, _ := readPackets(got.Binary)
		for _, p := range pkts {
			if p.tag == tagSecretKey || p.tag == tagSecretSubkey || p.tag == tagTrust {
				t.Fatalf("%s: packet type %d in output", name, p.tag)
			}
		}
	}
}

func TestTrustGarbage(t *testing.T) {
	k := newTestKey(t)
	pub := k.public()
	cases := map[string][]byte{
		"empty":       nil,
		"text":        []byte("hello world"),
		"html":        []byte("<html><body>Proxy login required</body></html>"),
		"truncated":   pub[:len(pub)-5],
		"signature":   armored(t, "PGP SIGNATURE", fakeSig()),
		"bad armor":   []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		"sig first":   append([]byte{0x88, byte(len(fakeSig()))}, append(fakeSig(), pub...)...),
		"partial len": {0xc6, 0xe1, 1, 2},
	}
	for name, in := range cases {
		_, err := Trust(in, "https://x/keys/microsoft.asc", []string{k.fp})
		wantFailure(t, err, failure.UntrustedKey, "is not an OpenPGP public key")
		_ = name
	}
}

func TestFingerprintV6(t *testing.T) {
	// v6 keys (RFC 9580) use SHA-256; only check the shape and that the
	// length-prefixed public part is found in a secret packet.
	body := []byte{6, 0, 0, 0, 1, 27, 0, 0, 0, 32}
	body = append(body, bytes.Repeat([]byte{7}, 32)...)
	fp, err := fingerprint(body)
	if err != nil || len(fp) != 64 {
		t.Fatalf("%q %v", fp, err)
	}
	pub, err := publicPart(packet{tag: tagSecretKey, body: append(append([]byte(nil), body...), 0, 9, 9, 9)})
	if err != nil || !bytes.Equal(pub, body) {
		t.Fatalf("publicPart: %v", err)
	}
}

func FuzzTrust(f *testing.F) {
	data, _ := os.ReadFile("testdata/microsoft.asc")
	f.Add(data)
	f.Add([]byte{0x99, 0, 3, 4, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := Trust(in, "fuzz", []string{microsoftFP})
		if err == nil && (len(k.Fingerprints) == 0 || len(k.Binary) == 0) {
			t.Fatal("success without keys")
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
	wantFailure(t, err, failure.RepositoryUnreachable, "TLS handshake failed")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Fetch(cctx, testClient(srv.Client()), srv.URL+"/keys/microsoft.asc")
	wantFailure(t, err, failure.RepositoryUnreachable, "cancelled")
}
