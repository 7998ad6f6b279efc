// Package proxy decides which HTTP proxy the handler's downloads and the
// package managers use, and says where that choice came from.
//
// The shipped extension's only remedy for a VM behind a proxy is to edit
// the agent's systemd unit so that the proxy variables reach the extension.
// This handler takes the proxy the machine is already configured with, in
// this order:
//
//  1. the httpProxy public setting (credentials, if any, only in the
//     protected settings httpProxyUsername and httpProxyPassword);
//  2. the agent's own proxy, HttpProxy.Host and HttpProxy.Port in
//     /etc/waagent.conf (the agent uses it for its own downloads, but does
//     not hand it to extensions);
//  3. the https_proxy / http_proxy variables the handler inherited.
//
// The proxy chosen is passed explicitly to every download and to every
// package-manager command. The Instance Metadata Service is never proxied
// (169.254.169.254 is always in no_proxy, and the IMDS client has no proxy
// at all).
package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"

	"github.com/aadsshlogin/handler/sysroot"
)

// WaagentConf is the agent's configuration file.
const WaagentConf = "/etc/waagent.conf"

// metadataAddress is never sent through a proxy.
const metadataAddress = "169.254.169.254"

// Proxy is the proxy in force and where it came from.
type Proxy struct {
	// URL is the proxy (with credentials when given); nil for none.
	URL *url.URL
	// Source says where it came from, for the status: "the httpProxy
	// setting", "/etc/waagent.conf (HttpProxy.Host, HttpProxy.Port)", "the
	// https_proxy environment variable".
	Source string
	// NoProxy is the no_proxy list in force, always with the metadata
	// service's address.
	NoProxy string
}

// None reports whether no proxy is used.
func (p Proxy) None() bool { return p.URL == nil }

// Redacted is the proxy's URL without credentials, for messages and logs.
func (p Proxy) Redacted() string {
	if p.URL == nil {
		return ""
	}
	u := *p.URL
	u.User = nil
	return u.String()
}

// Describe says in one sentence what downloads use; "" without a proxy.
func (p Proxy) Describe() string {
	if p.None() {
		return ""
	}
	return fmt.Sprintf("Downloads and the package manager go through the proxy %s (from %s); the metadata service is reached directly.", p.Redacted(), p.Source)
}

// Env is what every package-manager command gets: the proxy in both
// spellings apt, dnf (libcurl) and zypper honour, and no_proxy. Without a
// proxy, only no_proxy, so that an inherited proxy cannot reach IMDS.
func (p Proxy) Env() []string {
	if p.URL == nil && p.NoProxy == "" {
		return nil // not resolved (uninstall): the inherited variables stand
	}
	env := []string{"no_proxy=" + p.NoProxy, "NO_PROXY=" + p.NoProxy}
	if p.URL != nil {
		u := p.URL.String()
		env = append(env, "http_proxy="+u, "https_proxy="+u, "HTTP_PROXY="+u, "HTTPS_PROXY="+u)
	}
	return env
}

// Func is the proxy decision for Go's HTTP transport: the proxy for every
// request except those no_proxy names (and the metadata service).
func (p Proxy) Func() func(*http.Request) (*url.URL, error) {
	if p.URL == nil && p.NoProxy == "" {
		// Not resolved (uninstall): the inherited variables decide.
		f := httpproxy.FromEnvironment().ProxyFunc()
		return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
	}
	if p.URL == nil {
		return func(*http.Request) (*url.URL, error) { return nil, nil }
	}
	cfg := httpproxy.Config{HTTPProxy: p.URL.String(), HTTPSProxy: p.URL.String(), NoProxy: p.NoProxy}
	f := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}

// Inputs are what Resolve decides from.
type Inputs struct {
	Root   sysroot.Root
	Getenv func(string) string
	// Setting is the httpProxy public setting ("" when not given), already
	// validated; User and Password come from the protected settings.
	Setting, User, Password string
}

// Resolve chooses the proxy (see the package comment). A malformed
// waagent.conf entry or variable is reported as an error naming it: a
// proxy the machine meant to use but that cannot be read would otherwise
// be silently bypassed.
func Resolve(in Inputs) (Proxy, error) {
	getenv := in.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	noProxy := joinNoProxy(firstOf(getenv, "no_proxy", "NO_PROXY"))
	switch {
	case in.Setting != "":
		u, err := url.Parse(in.Setting)
		if err != nil {
			return Proxy{}, fmt.Errorf("the httpProxy setting: %w", err)
		}
		if in.User != "" || in.Password != "" {
			u.User = url.UserPassword(in.User, in.Password)
		}
		return Proxy{URL: u, Source: "the httpProxy setting", NoProxy: noProxy}, nil
	}
	if host, port, ok := waagentProxy(in.Root); ok {
		u, err := url.Parse("http://" + host + ":" + port)
		if err != nil || u.Hostname() == "" || u.Port() == "" {
			return Proxy{}, fmt.Errorf("%s names the proxy %q port %q, which is not a host and a port", WaagentConf, host, port)
		}
		return Proxy{URL: u, Source: WaagentConf + " (HttpProxy.Host, HttpProxy.Port)", NoProxy: noProxy}, nil
	}
	for _, name := range []string{"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"} {
		v := getenv(name)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v // what curl and Go accept too
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return Proxy{}, fmt.Errorf("the %s environment variable (%q) is not a proxy URL", name, redactRaw(getenv(name)))
		}
		return Proxy{URL: u, Source: "the " + name + " environment variable", NoProxy: noProxy}, nil
	}
	return Proxy{NoProxy: noProxy}, nil
}

// waagentProxy reads HttpProxy.Host and HttpProxy.Port; "None" or empty is
// unset, as the agent reads it.
func waagentProxy(root sysroot.Root) (host, port string, ok bool) {
	data, err := root.ReadFile(WaagentConf)
	if err != nil {
		return "", "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if !found {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if strings.EqualFold(v, "none") {
			v = ""
		}
		switch strings.TrimSpace(k) {
		case "HttpProxy.Host":
			host = v
		case "HttpProxy.Port":
			port = v
		}
	}
	return host, port, host != "" && port != ""
}

func firstOf(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// joinNoProxy adds the metadata service to an inherited no_proxy list.
func joinNoProxy(inherited string) string {
	parts := []string{metadataAddress}
	for _, p := range strings.Split(inherited, ",") {
		if p = strings.TrimSpace(p); p != "" && p != metadataAddress {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ",")
}

// redactRaw hides credentials in a value that did not parse.
func redactRaw(v string) string {
	if at := strings.LastIndex(v, "@"); at >= 0 {
		if i := strings.Index(v, "://"); i >= 0 && i < at {
			return v[:i+3] + "…@" + v[at+1:]
		}
		return "…@" + v[at+1:]
	}
	return v
}
