package agent

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/cmdrun"
	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/test/require"
)

// fakeDecrypter returns a fixed plaintext and records what it was given.
type fakeDecrypter struct {
	plain      []byte
	err        error
	der        []byte
	thumbprint string
	calls      int
}

func (f *fakeDecrypter) Decrypt(_ context.Context, der []byte, tp string) ([]byte, error) {
	f.der, f.thumbprint = der, tp
	f.calls++
	return f.plain, f.err
}

func settingsJSON(public, protected, thumb string) string {
	return `{"runtimeSettings":[{"handlerSettings":{"publicSettings":` + public +
		`,"protectedSettings":` + protected + `,"protectedSettingsCertThumbprint":` + thumb + `}}]}`
}

const testThumb = "0123456789ABCDEF0123456789ABCDEF01234567"

func TestParseSettingsGood(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("cipher"))
	tests := []struct {
		name       string
		data       string
		dec        *fakeDecrypter
		public     string
		protected  string
		wantThumb  string
		wantCalled bool
	}{
		{"empty file", "", nil, "", "", "", false},
		{"whitespace file", " \n", nil, "", "", "", false},
		{"real AAD file", `{"runtimeSettings": [{"handlerSettings": {"publicSettings": {}, "protectedSettings": null, "protectedSettingsCertThumbprint": null}}]}`, nil, "{}", "", "", false},
		{"bom", "\ufeff" + settingsJSON(`{"a":1}`, "null", "null"), nil, `{"a":1}`, "", "", false},
		{"all null", settingsJSON("null", "null", "null"), nil, "", "", "", false},
		{"keys absent", `{"runtimeSettings":[{"handlerSettings":{}}]}`, nil, "", "", "", false},
		{"empty protected string", settingsJSON("{}", `""`, "null"), nil, "{}", "", "", false},
		{"thumbprint without protected", settingsJSON("{}", "null", `"`+testThumb+`"`), nil, "{}", "", "", false},
		{"protected", settingsJSON(`{"x":"y"}`, `"`+b64+`"`, `"`+testThumb+`"`), &fakeDecrypter{plain: []byte(`{"secret":"s"}`)}, `{"x":"y"}`, `{"secret":"s"}`, testThumb, true},
		{"lower-case thumbprint normalised", settingsJSON(`{}`, `"`+b64+`"`, `"`+strings.ToLower(testThumb)+`"`), &fakeDecrypter{plain: []byte(" {}\n")}, `{}`, `{}`, testThumb, true},
		{"wrapped base64", settingsJSON(`{}`, `"`+b64[:4]+`\n`+b64[4:]+`"`, `"`+testThumb+`"`), &fakeDecrypter{plain: []byte(`{}`)}, `{}`, `{}`, testThumb, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dec Decrypter
			if tt.dec != nil {
				dec = tt.dec
			}
			hs, err := ParseSettings([]byte(tt.data), dec)
			if err != nil {
				t.Fatal(err)
			}
			if !hs.Found {
				t.Error("Found = false")
			}
			if string(hs.Public) != tt.public || (tt.public == "") != (hs.Public == nil) {
				t.Errorf("Public = %q, want %q", hs.Public, tt.public)
			}
			if tt.dec != nil && tt.dec.calls != 0 {
				t.Errorf("parsing decrypted the protected settings")
			}
			if hs.HasProtected() != tt.wantCalled {
				t.Errorf("HasProtected = %v", hs.HasProtected())
			}
			protected, err := hs.Protected(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if string(protected) != tt.protected || (tt.protected == "") != (protected == nil) {
				t.Errorf("Protected = %q, want %q", protected, tt.protected)
			}
			if tt.dec != nil {
				if tt.dec.calls != 1 || !tt.wantCalled {
					t.Errorf("decrypter called %d times", tt.dec.calls)
				}
				if string(tt.dec.der) != "cipher" || tt.dec.thumbprint != tt.wantThumb {
					t.Errorf("decrypter got %q, %q", tt.dec.der, tt.dec.thumbprint)
				}
			}
		})
	}
}

func TestParseSettingsBad(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("cipher"))
	okDec := &fakeDecrypter{plain: []byte(`{}`)}
	tests := []struct {
		name string
		data string
		dec  Decrypter
		want string
	}{
		{"not json", `{"runtimeSettings":`, nil, "not a JSON object"},
		{"array", `[]`, nil, "not a JSON object"},
		{"null", `null`, nil, "not a JSON object"},
		{"no runtimeSettings", `{}`, nil, "runtimeSettings is missing"},
		{"runtimeSettings object", `{"runtimeSettings":{}}`, nil, "runtimeSettings is not a JSON array"},
		{"runtimeSettings empty", `{"runtimeSettings":[]}`, nil, "0 elements"},
		{"runtimeSettings null", `{"runtimeSettings":null}`, nil, "0 elements"},
		{"runtimeSettings two", `{"runtimeSettings":[{"handlerSettings":{}},{"handlerSettings":{}}]}`, nil, "2 elements"},
		{"element string", `{"runtimeSettings":["x"]}`, nil, "runtimeSettings[0] is not a JSON object"},
		{"no handlerSettings", `{"runtimeSettings":[{}]}`, nil, "handlerSettings is missing"},
		{"handlerSettings string", `{"runtimeSettings":[{"handlerSettings":"x"}]}`, nil, "handlerSettings is not a JSON object"},
		{"handlerSettings null", `{"runtimeSettings":[{"handlerSettings":null}]}`, nil, "handlerSettings is not a JSON object"},
		{"public string", settingsJSON(`"x"`, "null", "null"), nil, "publicSettings is not a JSON object"},
		{"public array", settingsJSON(`[1]`, "null", "null"), nil, "publicSettings is not a JSON object"},
		{"public number", settingsJSON(`1`, "null", "null"), nil, "publicSettings is not a JSON object"},
		{"protected number", settingsJSON(`{}`, "5", "null"), nil, "protectedSettings is not a string"},
		{"protected object", settingsJSON(`{}`, "{}", "null"), nil, "protectedSettings is not a string"},
		{"thumbprint number", settingsJSON(`{}`, `"`+b64+`"`, "5"), okDec, "protectedSettingsCertThumbprint is not a string"},
		{"huge", `{"runtimeSettings":[{"handlerSettings":{"publicSettings":{"a":"` + strings.Repeat("x", 1<<20) + `"}}}]}`, nil, "larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := ParseSettings([]byte(tt.data), tt.dec)
			if err == nil {
				t.Fatalf("no error: %+v", hs)
			}
			wantFailure(t, err, failure.BadSettings, tt.want)
		})
	}
	if okDec.calls != 0 {
		t.Errorf("parsing decrypted %d times", okDec.calls)
	}
}

// TestProtectedBad: what is wrong with protected settings is found when
// they are asked for, not when the file is parsed, and never quotes the
// plaintext.
func TestProtectedBad(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("cipher"))
	okDec := &fakeDecrypter{plain: []byte(`{}`)}
	tests := []struct {
		name string
		data string
		dec  Decrypter
		want string
	}{
		{"protected without thumbprint", settingsJSON(`{}`, `"`+b64+`"`, "null"), okDec, "protectedSettingsCertThumbprint is missing"},
		{"protected empty thumbprint", settingsJSON(`{}`, `"`+b64+`"`, `""`), okDec, "protectedSettingsCertThumbprint is missing"},
		{"thumbprint traversal", settingsJSON(`{}`, `"`+b64+`"`, `"../../etc/passwd"`), okDec, "not a hexadecimal"},
		{"thumbprint slash", settingsJSON(`{}`, `"`+b64+`"`, `"AB/CD"`), okDec, "not a hexadecimal"},
		{"thumbprint too long", settingsJSON(`{}`, `"`+b64+`"`, `"`+strings.Repeat("A", 129)+`"`), okDec, "not a hexadecimal"},
		{"bad base64", settingsJSON(`{}`, `"!!notbase64"`, `"`+testThumb+`"`), okDec, "not valid base64"},
		{"no decrypter", settingsJSON(`{}`, `"`+b64+`"`, `"`+testThumb+`"`), nil, "no way to decrypt"},
		{"plaintext array", settingsJSON(`{}`, `"`+b64+`"`, `"`+testThumb+`"`), &fakeDecrypter{plain: []byte(`["secret-value"]`)}, "not a JSON object"},
		{"plaintext garbage", settingsJSON(`{}`, `"`+b64+`"`, `"`+testThumb+`"`), &fakeDecrypter{plain: []byte(`{"secret-value`)}, "not a JSON object"},
		{"plaintext empty", settingsJSON(`{}`, `"`+b64+`"`, `"`+testThumb+`"`), &fakeDecrypter{plain: nil}, "not a JSON object"},
		{"decrypter error", settingsJSON(`{}`, `"`+b64+`"`, `"`+testThumb+`"`), &fakeDecrypter{err: errors.New("boom")}, testThumb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := ParseSettings([]byte(tt.data), tt.dec)
			if err != nil {
				t.Fatalf("parsing failed: %v", err)
			}
			if !hs.HasProtected() {
				t.Fatal("HasProtected = false")
			}
			protected, err := hs.Protected(context.Background())
			if err == nil {
				t.Fatalf("no error: %q", protected)
			}
			fe := wantFailure(t, err, failure.BadSettings, tt.want)
			if strings.Contains(err.Error(), "secret-value") || strings.Contains(fe.Msg, "secret-value") {
				t.Errorf("plaintext leaked: %v", err)
			}
		})
	}
}

func TestLoadSettings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "0.settings"), nil)
	writeFile(t, filepath.Join(dir, "1.settings"), []byte(settingsJSON(`{"k":"v"}`, "null", "null")))
	writeFile(t, filepath.Join(dir, "2.settings"), []byte(settingsJSON(`"x"`, "null", "null")))
	writeFile(t, filepath.Join(dir, "3.settings"), make([]byte, 1<<20+1))
	if err := os.Mkdir(filepath.Join(dir, "4.settings"), 0o700); err != nil {
		t.Fatal(err)
	}

	hs, err := LoadSettings(dir, 0, nil)
	if err != nil || !hs.Found || hs.Public != nil || hs.HasProtected() {
		t.Errorf("0-byte: %+v, %v", hs, err)
	}
	hs, err = LoadSettings(dir, 1, nil)
	if err != nil || !hs.Found || string(hs.Public) != `{"k":"v"}` {
		t.Errorf("1: %+v, %v", hs, err)
	}
	hs, err = LoadSettings(dir, 9, nil)
	if err != nil || hs.Found {
		t.Errorf("missing: %+v, %v", hs, err)
	}
	_, err = LoadSettings(dir, 2, nil)
	wantFailure(t, err, failure.BadSettings, filepath.Join(dir, "2.settings"), "publicSettings")
	_, err = LoadSettings(dir, 3, nil)
	wantFailure(t, err, failure.BadSettings, filepath.Join(dir, "3.settings"), "1 MiB")
	_, err = LoadSettings(dir, 4, nil)
	wantFailure(t, err, failure.BadSettings, filepath.Join(dir, "4.settings"))
	_, err = LoadSettings(dir, -1, nil)
	wantFailure(t, err, failure.BadSettings)
}

// TestProtectedSettingsDecryptedOnlyWhenAsked: loading settings with
// protected settings runs no openssl and needs no certificate; a missing
// certificate is reported only by Protected, naming the file.
func TestProtectedSettingsDecryptedOnlyWhenAsked(t *testing.T) {
	dir := t.TempDir()
	lib := t.TempDir() // no certificate in it
	b64 := base64.StdEncoding.EncodeToString([]byte("cipher"))
	writeFile(t, filepath.Join(dir, "5.settings"), []byte(settingsJSON(`{"k":"v"}`, `"`+b64+`"`, `"`+testThumb+`"`)))
	fake := &cmdrun.Fake{}
	hs, err := LoadSettings(dir, 5, OpenSSL{Runner: fake, CertDir: lib})
	if err != nil {
		t.Fatalf("loading needed the certificate: %v", err)
	}
	if string(hs.Public) != `{"k":"v"}` || !hs.HasProtected() || len(fake.Calls) != 0 {
		t.Fatalf("public %s, protected %v, commands %v", hs.Public, hs.HasProtected(), fake.Lines())
	}
	_, err = hs.Protected(context.Background())
	wantFailure(t, err, failure.BadSettings, testThumb+".crt is missing", lib)
	if len(fake.Calls) != 0 {
		t.Errorf("openssl ran without a certificate: %v", fake.Lines())
	}
}

// testCert creates a throwaway certificate and key with the openssl CLI,
// stored as the agent does (<THUMBPRINT>.crt / .prv in libDir), and returns
// the thumbprint.
func testCert(t *testing.T, libDir string) string {
	t.Helper()
	require.Tools(t, "openssl")
	tmp := t.TempDir()
	crt, key := filepath.Join(tmp, "c.crt"), filepath.Join(tmp, "k.pem")
	run(t, nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
		"-subj", "/CN=aadsshlogin-handler-test", "-days", "1")
	pemCrt, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemCrt)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	sum := sha1.Sum(block.Bytes)
	tp := strings.ToUpper(hex.EncodeToString(sum[:]))
	pemKey, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	// The agent's files are chunks of `openssl pkcs12` output, so text can
	// precede the BEGIN line; openssl must cope with that.
	writeFile(t, filepath.Join(libDir, tp+".crt"), append([]byte("Bag Attributes\n    localKeyID: 01 00 00 00\n"), pemCrt...))
	writeFile(t, filepath.Join(libDir, tp+".prv"), append([]byte("Bag Attributes\n"), pemKey...))
	return tp
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out
}

func TestLoadSettingsDecryptsWithOpenSSL(t *testing.T) {
	lib := t.TempDir()
	tp := testCert(t, lib)
	secret := `{"token":"s3cr3t-plaintext","n":1}`
	config := filepath.Join(lib, HandlerName+"-1.0", "config")
	// AES-256 is what the platform sends today; 3DES is what older
	// payloads (and the agent's own sample) use.
	for i, cipher := range []string{"-aes256", "-des3"} {
		der := run(t, []byte(secret), "openssl", "cms", "-encrypt", "-outform", "DER", cipher, filepath.Join(lib, tp+".crt"))
		writeFile(t, filepath.Join(config, fmt.Sprint(i)+".settings"), []byte(settingsJSON(`{"pub":true}`,
			`"`+base64.StdEncoding.EncodeToString(der)+`"`, `"`+tp+`"`)))

		hs, err := LoadSettings(config, i, OpenSSL{Runner: cmdrun.Exec{}, CertDir: lib})
		if err != nil {
			t.Fatalf("%s: %v", cipher, err)
		}
		protected, err := hs.Protected(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", cipher, err)
		}
		var got, want map[string]any
		if err := json.Unmarshal(protected, &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(secret), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) || string(hs.Public) != `{"pub":true}` {
			t.Fatalf("%s: got public %s protected %s", cipher, hs.Public, protected)
		}
	}

	// Without the private key: loading works, decrypting fails with
	// BadSettings naming the thumbprint and folder, and never the secret.
	if err := os.Remove(filepath.Join(lib, tp+".prv")); err != nil {
		t.Fatal(err)
	}
	hs, err := LoadSettings(config, 0, OpenSSL{Runner: cmdrun.Exec{}, CertDir: lib})
	if err != nil {
		t.Fatal(err)
	}
	_, err = hs.Protected(context.Background())
	wantFailure(t, err, failure.BadSettings, tp, lib, ".prv")
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("plaintext in error: %v", err)
	}
}

func TestOpenSSLWrongKey(t *testing.T) {
	lib := t.TempDir()
	tp := testCert(t, lib)
	other := t.TempDir()
	tp2 := testCert(t, other)
	der := run(t, []byte(`{"a":"s3cr3t"}`), "openssl", "cms", "-encrypt", "-outform", "DER", "-aes256", filepath.Join(other, tp2+".crt"))
	// Encrypted for tp2 but decrypted with tp's files (renamed to tp2).
	for _, ext := range []string{".crt", ".prv"} {
		if err := os.Rename(filepath.Join(lib, tp+ext), filepath.Join(lib, tp2+ext)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := OpenSSL{Runner: cmdrun.Exec{}, CertDir: lib}.Decrypt(context.Background(), der, tp2)
	wantFailure(t, err, failure.BadSettings, tp2, "could not be decrypted")
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("plaintext in error: %v", err)
	}
}

func TestOpenSSLFallsBackToSmime(t *testing.T) {
	lib := t.TempDir()
	writeFile(t, filepath.Join(lib, testThumb+".crt"), []byte("crt"))
	writeFile(t, filepath.Join(lib, testThumb+".prv"), []byte("prv"))
	var stdin []byte
	fake := &cmdrun.Fake{Strict: true, Responses: map[string]cmdrun.FakeResponse{
		"/usr/bin/openssl cms": {Result: cmdrun.Result{ExitCode: 1, Stderr: []byte("cms: unknown command")}},
		"/usr/bin/openssl smime": {Func: func(c cmdrun.Cmd) (cmdrun.Result, error) {
			buf := new(bytes.Buffer)
			_, _ = buf.ReadFrom(c.Stdin)
			stdin = buf.Bytes()
			return cmdrun.Result{Stdout: []byte(`{"ok":1}`)}, nil
		}},
	}}
	o := OpenSSL{Runner: fake, CertDir: lib, Binary: "/usr/bin/openssl"}
	out, err := o.Decrypt(context.Background(), []byte("DER"), strings.ToLower(testThumb))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"ok":1}` || string(stdin) != "DER" {
		t.Fatalf("out %q stdin %q", out, stdin)
	}
	crt, prv := filepath.Join(lib, testThumb+".crt"), filepath.Join(lib, testThumb+".prv")
	want := []string{
		"/usr/bin/openssl cms -decrypt -inform DER -recip " + crt + " -inkey " + prv,
		"/usr/bin/openssl smime -decrypt -inform DER -recip " + crt + " -inkey " + prv,
	}
	if got := fake.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOpenSSLFailures(t *testing.T) {
	lib := t.TempDir()
	writeFile(t, filepath.Join(lib, testThumb+".crt"), []byte("crt"))
	writeFile(t, filepath.Join(lib, testThumb+".prv"), []byte("prv"))
	tests := []struct {
		name  string
		fake  *cmdrun.Fake
		tp    string
		want  string
		calls int
	}{
		{"both fail", &cmdrun.Fake{Responses: map[string]cmdrun.FakeResponse{
			"openssl": {Result: cmdrun.Result{ExitCode: 4, Stdout: []byte(`{"partial-secret`), Stderr: []byte("bad decrypt near {\"partial-secret")}},
		}}, testThumb, "could not be decrypted", 2},
		{"not installed", &cmdrun.Fake{Strict: true}, testThumb, "not installed", 1},
		{"missing crt", &cmdrun.Fake{}, "AAAA", "AAAA.crt is missing", 0},
		{"bad thumbprint", &cmdrun.Fake{}, "../x", "not hexadecimal", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenSSL{Runner: tt.fake, CertDir: lib}.Decrypt(context.Background(), []byte("x"), tt.tp)
			wantFailure(t, err, failure.BadSettings, tt.want)
			if strings.Contains(err.Error(), "partial-secret") {
				t.Errorf("output leaked into error: %v", err)
			}
			if len(tt.fake.Calls) != tt.calls {
				t.Errorf("%d calls, want %d", len(tt.fake.Calls), tt.calls)
			}
			for _, c := range tt.fake.Calls {
				if !c.Sensitive {
					t.Errorf("%s not marked Sensitive: its output would be logged", c)
				}
			}
		})
	}
}
