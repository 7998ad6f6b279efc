// Package repo builds the package repository definition for a platform and
// a cloud (or a user's mirror), and decides which packages.microsoft.com
// folder derivatives such as AlmaLinux, Rocky or Oracle Linux use.
//
// The definition differs from the shipped extension's in three deliberate
// ways: apt entries are bound to one keyring with signed-by= (instead of a
// key in trusted.gpg.d that apt would trust for every repository), RPM
// repositories check metadata signatures (repo_gpgcheck) against a local
// key file rather than a key URL, and derivatives fall back to the parent
// distribution's folder when their own folder is forbidden, missing or does
// not carry aadsshlogin.
package repo

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/aadsshlogin/handler/distro"
	"github.com/aadsshlogin/handler/sysroot"
)

// Header is the first line of every file we write, so users (and our own
// uninstall) can tell the file is managed.
const Header = "# Managed by the AADSSHLoginForLinux VM extension (Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux). Changes are overwritten."

// DefaultBase is the public repository host.
const DefaultBase = "https://packages.microsoft.com"

// RepoID is the rpm repository section and zypper alias we write. It is the
// name Microsoft's own packages-microsoft-prod configuration uses.
const RepoID = "packages-microsoft-com-prod"

// Target paths.
const (
	AptListPath    = "/etc/apt/sources.list.d/microsoft-prod.list"
	YumRepoPath    = "/etc/yum.repos.d/microsoft-prod.repo"
	ZypperRepoPath = "/etc/zypp/repos.d/microsoft-prod.repo"
	AptKeyringPath = "/etc/apt/keyrings/microsoft-aadsshlogin.gpg"
	RPMKeyPath     = "/etc/pki/rpm-gpg/microsoft-aadsshlogin.asc"
)

// Location is where repositories live.
type Location struct {
	// Base is https://packages.microsoft.com, a mirror (repositoryUrl) or
	// an air-gapped repository host; no trailing slash.
	Base string
	// Prefix ("" or "/microsoft" in air-gapped clouds) is applied to
	// repository URLs, not to the key URL.
	Prefix string
}

// root is the URL under which the distribution folders live.
func (l Location) root() string { return l.Base + l.Prefix }

// Definition is the repository configuration for one platform.
type Definition struct {
	Path        string // file we write
	Content     []byte // full file content, starting with Header
	RepoURL     string // repository base URL (messages, probes)
	RepoID      string // rpm section / zypper alias; "" for apt
	KeyringPath string // key file the definition references
	// Reuse is true when the image's own repository already provides
	// aadsshlogin: nothing is written and packages come from ReuseRepoID.
	Reuse       bool
	ReuseRepoID string
}

// reusable names the image repositories that carry aadsshlogin.
func reusable(f distro.Family) string {
	switch f {
	case distro.FamilyAzureLinux:
		return "azurelinux-official-ms-non-oss"
	case distro.FamilyMariner:
		return "mariner-official-extras"
	}
	return ""
}

// Build makes the definition for a platform, a location and the folder
// ChooseFlavor picked. It never reuses the image's repository (the
// installer decides that with FindReusable).
func Build(p distro.Platform, loc Location, flavor string) (Definition, error) {
	if err := checkLocation(loc); err != nil {
		return Definition{}, err
	}
	if !safeToken(flavor) {
		return Definition{}, fmt.Errorf("invalid repository folder %q", flavor)
	}
	switch p.Family {
	case distro.FamilyMariner, distro.FamilyAzureLinux:
		return buildTdnf(p, loc)
	}
	switch p.PackageManager {
	case distro.Apt:
		return buildApt(p, loc, flavor)
	case distro.Dnf, distro.Yum:
		return buildRPM(p, loc, flavor, false)
	case distro.Zypper:
		return buildRPM(p, loc, flavor, true)
	}
	return Definition{}, fmt.Errorf("no repository layout for package manager %q", p.PackageManager)
}

func buildApt(p distro.Platform, loc Location, flavor string) (Definition, error) {
	if !safeToken(p.Codename) || !safeToken(p.Arch) {
		return Definition{}, fmt.Errorf("invalid apt codename %q or architecture %q", p.Codename, p.Arch)
	}
	name := p.Codename
	// Microsoft publishes arm64 packages for Ubuntu 18.04 only in the
	// multiarch repository.
	if flavor == "ubuntu" && p.Codename == "bionic" && p.Arch == "arm64" {
		name += "-multiarch"
	}
	url := fmt.Sprintf("%s/repos/microsoft-%s-%s-prod", loc.root(), flavor, name)
	content := fmt.Sprintf("%s\ndeb [arch=%s signed-by=%s] %s %s main\n", Header, p.Arch, AptKeyringPath, url, p.Codename)
	return Definition{
		Path:        AptListPath,
		Content:     []byte(content),
		RepoURL:     url,
		KeyringPath: AptKeyringPath,
	}, nil
}

func buildRPM(p distro.Platform, loc Location, flavor string, zypper bool) (Definition, error) {
	if !safeToken(p.Major) {
		return Definition{}, fmt.Errorf("invalid release folder %q", p.Major)
	}
	url := fmt.Sprintf("%s/%s/%s/prod/", loc.root(), flavor, p.Major)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n[%s]\nname=%s\nbaseurl=%s\n", Header, RepoID, RepoID, url)
	path := YumRepoPath
	if zypper {
		path = ZypperRepoPath
		b.WriteString("type=rpm-md\nenabled=1\nautorefresh=1\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n")
	} else {
		b.WriteString("enabled=1\ngpgcheck=1\nrepo_gpgcheck=1\n")
	}
	fmt.Fprintf(&b, "gpgkey=file://%s\nsslverify=1\n", RPMKeyPath)
	return Definition{
		Path:        path,
		Content:     []byte(b.String()),
		RepoURL:     url,
		RepoID:      RepoID,
		KeyringPath: RPMKeyPath,
	}, nil
}

// tdnfURL is the repository that carries aadsshlogin on CBL-Mariner and
// Azure Linux: a per-architecture folder, unlike the other RPM layouts.
func tdnfURL(p distro.Platform, loc Location) (string, error) {
	if !safeToken(p.Major) || !safeToken(p.RPMArch()) {
		return "", fmt.Errorf("invalid release %q or architecture %q", p.Major, p.RPMArch())
	}
	switch p.Family {
	case distro.FamilyMariner:
		return fmt.Sprintf("%s/cbl-mariner/%s/prod/extras/%s", loc.root(), p.Major, p.RPMArch()), nil
	case distro.FamilyAzureLinux:
		return fmt.Sprintf("%s/azurelinux/%s/prod/ms-non-oss/%s", loc.root(), p.Major, p.RPMArch()), nil
	}
	return "", fmt.Errorf("no tdnf repository layout for %q", p.Family)
}

func buildTdnf(p distro.Platform, loc Location) (Definition, error) {
	url, err := tdnfURL(p, loc)
	if err != nil {
		return Definition{}, err
	}
	content := fmt.Sprintf("%s\n[%s]\nname=%s\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\nsslverify=1\n",
		Header, RepoID, RepoID, url, RPMKeyPath)
	return Definition{
		Path:        YumRepoPath,
		Content:     []byte(content),
		RepoURL:     url,
		RepoID:      RepoID,
		KeyringPath: RPMKeyPath,
	}, nil
}

// checkLocation refuses a base or prefix that is not an https URL made of
// the characters a repository's address needs: ASCII letters, digits,
// "-._~", "/" and, in the host part, ":" before a port. The settings are
// validated the same way before they get here; this is the second line,
// because every other character means something in one of the files we
// write: a line break or white space ends the value, dnf, yum and tdnf
// split baseurl= on commas (a second, local address) and expand "$"
// variables, apt reads "[" and "]" as options and zypper and dnf read ";"
// and "#" as comments.
func checkLocation(loc Location) error {
	rest, ok := strings.CutPrefix(loc.Base, "https://")
	host, path, _ := strings.Cut(rest, "/")
	if !ok || host == "" || !urlChars(host, ":") || !urlChars(path, "/") {
		return fmt.Errorf("repository base %q is not an https URL made of letters, digits and -._~/: only", loc.Base)
	}
	if loc.Prefix != "" && (!strings.HasPrefix(loc.Prefix, "/") || !urlChars(loc.Prefix, "/")) {
		return fmt.Errorf("repository prefix %q is not a path made of letters, digits and -._~/ only", loc.Prefix)
	}
	return nil
}

// urlChars reports whether s has only RFC 3986 unreserved characters
// (ASCII letters, digits, "-._~") and those in extra.
func urlChars(s, extra string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~", r), strings.ContainsRune(extra, r):
		default:
			return false
		}
	}
	return true
}

func safeToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// FindReusable looks for the image's own enabled repository that carries
// aadsshlogin on Azure Linux 3.0 (azurelinux-official-ms-non-oss) and
// CBL-Mariner 2.0 (mariner-official-extras). Other families never reuse.
func FindReusable(root sysroot.Root, p distro.Platform) (string, bool) {
	want := reusable(p.Family)
	if want == "" {
		return "", false
	}
	files, err := root.Glob("/etc/yum.repos.d/*.repo")
	if err != nil {
		return "", false
	}
	for _, f := range files {
		data, err := root.ReadFile(f)
		if err != nil {
			continue
		}
		if sectionEnabled(data, want) {
			return want, true
		}
	}
	return "", false
}

// sectionEnabled reports whether an ini-style .repo file has the section id
// and it is enabled (dnf and tdnf treat a missing "enabled" as enabled).
func sectionEnabled(data []byte, id string) bool {
	in, found, enabled := false, false, true
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			if in {
				break
			}
			in = strings.TrimSpace(line[1:len(line)-1]) == id
			found = found || in
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "enabled" {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "0", "false", "no", "off":
				enabled = false
			default:
				enabled = true
			}
		}
	}
	return found && enabled
}
