package httpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestReason: one wording of network errors for the downloads, IMDS and the
// network diagnosis, with the advice each certificate problem calls for.
func TestReason(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	cert := &x509.Certificate{Issuer: pkix.Name{CommonName: "Contoso Inspection CA"}}
	cases := []struct {
		err  error
		want []string
	}{
		{context.DeadlineExceeded, []string{"timed out"}},
		{fmt.Errorf("get: %w", context.Canceled), []string{"cancelled"}},
		{dial(syscall.ECONNREFUSED), []string{"connection refused"}},
		{dial(syscall.ECONNRESET), []string{"connection reset"}},
		{dial(syscall.EHOSTUNREACH), []string{"no route to host"}},
		{dial(syscall.ENETUNREACH), []string{"network unreachable"}},
		{&net.DNSError{Err: "no such host", Name: "packages.microsoft.com", IsNotFound: true},
			[]string{"cannot resolve host name packages.microsoft.com (no such host)"}},
		{&net.DNSError{Err: "i/o timeout", Name: "packages.microsoft.com", IsTimeout: true},
			[]string{"cannot resolve host name packages.microsoft.com (timed out)"}},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}},
			[]string{"certificate verify failed", `issued by "Contoso Inspection CA", is not trusted`, "TLS-inspecting proxy"}},
		{&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: "packages.microsoft.com"}},
			[]string{"certificate verify failed", "not valid for packages.microsoft.com", "something other than the real server"}},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}},
			[]string{"certificate verify failed", "expired or not yet valid", "check the VM's clock"}},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, []string{"the server did not speak TLS"}},
		{errors.New("http: server gave HTTP response to HTTPS client"), []string{"the server did not speak TLS"}},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), []string{"connection closed by the server"}},
		{errors.New("remote error: tls: handshake failure"), []string{"TLS error: handshake failure"}},
		{ErrRedirectRefused, []string{"redirected"}},
		{errors.New("something odd"), []string{"network error"}},
	}
	for _, c := range cases {
		got := Reason(c.err)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("Reason(%v) = %q, want %q in it", c.err, got, w)
			}
		}
	}
}

func TestDNSReason(t *testing.T) {
	cases := map[string]error{
		"no such host":       &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true},
		"timed out":          &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true},
		"server misbehaving": &net.DNSError{Err: "server misbehaving", Name: "x"},
		"lookup failed":      errors.New("odd"),
	}
	for want, err := range cases {
		if got := DNSReason(err); got != want {
			t.Errorf("DNSReason(%v) = %q, want %q", err, got, want)
		}
	}
}
