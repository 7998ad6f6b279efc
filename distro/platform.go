package distro

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aadsshlogin/handler/failure"
)

// LearnMoreURL is the public documentation users are pointed to when their
// machine is not supported.
const LearnMoreURL = "https://aka.ms/AADSSHLogin"

// Family groups distributions that share repository conventions.
type Family string

const (
	FamilyDebian     Family = "debian"
	FamilyRHEL       Family = "rhel"
	FamilySUSE       Family = "suse"
	FamilyMariner    Family = "mariner"
	FamilyAzureLinux Family = "azurelinux"
)

// PackageManager names the package-manager back end the installer drives.
type PackageManager string

const (
	Apt    PackageManager = "apt"
	Dnf    PackageManager = "dnf"
	Yum    PackageManager = "yum"
	Zypper PackageManager = "zypper"
	Tdnf   PackageManager = "tdnf"
)

// Platform is a supported distribution release on a supported architecture,
// with everything the installer derives from it.
type Platform struct {
	OS             OSRelease
	Arch           string // Debian style: "amd64" or "arm64"
	Family         Family
	PackageManager PackageManager
	// Flavor is the packages.microsoft.com folder for the distribution.
	Flavor string
	// FallbackFlavor is the folder to use when Flavor's folder is missing,
	// forbidden or has no aadsshlogin; "" when there is none.
	FallbackFlavor string
	// Major is the release folder: "7", "8", "9", "12", "15", "42" for the
	// RPM layout, "2.0"/"3.0" for CBL-Mariner/Azure Linux.
	Major string
	// Codename is the apt suite ("jammy", "bookworm"); "" for RPM families.
	Codename             string
	SELinuxPolicyPackage string
	// PinnedVersion is the aadsshlogin version to install instead of the
	// newest ("" = newest). SUSE 15.6 changed a library soname, so newer
	// packages do not install on older SUSE releases.
	PinnedVersion string
	// KeyFile is the packages.microsoft.com key (under <base>/keys/) the
	// release's repository is signed with; "" when the release is newer
	// than the table and the key is not known: then every published key
	// is fetched and the pinned ones trusted.
	KeyFile string
	// Listing says how the release stands against Microsoft's published
	// support table.
	Listing Listing
}

// Listing is how a release stands against Microsoft's published support
// table (https://aka.ms/AADSSHLogin).
type Listing int8

const (
	// Listed: the release is in Microsoft's published table.
	Listed Listing = iota
	// RebuildNotListed: a rebuild of a listed release (AlmaLinux, Rocky and
	// Oracle Linux 10 of RHEL 10) that Microsoft's table does not name yet;
	// it installs from the same repository as the release it rebuilds.
	RebuildNotListed
	// Newer: a release of a supported distribution newer than every release
	// the table knows. It is installed only when packages.microsoft.com has
	// a repository for it that offers aadsshlogin (the installer asks the
	// repository before changing anything).
	Newer
)

// Unlisted reports whether the release is outside Microsoft's published
// table, so the status must say so.
func (p Platform) Unlisted() bool { return p.Listing != Listed }

// RPMArch returns the RPM name of the architecture (x86_64 / aarch64).
func (p Platform) RPMArch() string {
	switch p.Arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return p.Arch
}

// Support is one row of the support matrix: a distribution, the os-release
// IDs it goes by and the releases that are supported.
type Support struct {
	Name     string   // human name, e.g. "Ubuntu"
	IDs      []string // os-release IDs, lower case
	Versions string   // human text, e.g. "16.04–24.04"
	Family   Family
	// Flavor and FallbackFlavor: see Platform.
	Flavor         string
	FallbackFlavor string
	Releases       []Release // supported version ranges, checked in order
	// NoNewer: a version above every range is refused rather than treated
	// as a newer release (CentOS Linux ended with 8; CentOS Stream is
	// another distribution).
	NoNewer bool
}

// Release is a supported range of VERSION_ID values of a distribution.
type Release struct {
	// From and To are inclusive bounds "major.minor"; a To minor of "*"
	// accepts every minor of that major. A VERSION_ID without a minor
	// counts as minor 0.
	From, To       string
	PackageManager PackageManager
	// Flavor overrides the row's Flavor for this range (e.g. CentOS after 8
	// lives in the rhel folder); "" keeps the row's.
	Flavor string
	// RepoVersion overrides the release folder (default: the major number).
	RepoVersion   string
	PinnedVersion string
	// KeyFile is the key PMC signs this release's repository with; ""
	// means keys.DefaultFile (microsoft.asc).
	KeyFile string
	// NotListed marks a release our table supports although Microsoft's
	// published table does not name it (see RebuildNotListed).
	NotListed bool
	// Legacy marks a range numbered above later releases (openSUSE Leap
	// 42.x came before 15): it never makes a version "newer", and a version
	// of its major that it does not cover is refused.
	Legacy bool
}

// key2025 signs every packages.microsoft.com repository created after April
// 2025 (RHEL 10 and its rebuilds, Debian 13, Ubuntu 25.10+, SLES 16).
const key2025 = "microsoft-2025.asc"

// defaultKeyFile signs every repository created before May 2025.
const defaultKeyFile = "microsoft.asc"

// suse15Pin is the last aadsshlogin build that installs on SUSE releases
// before 15.6 (public docs tell users to pin it by hand).
const suse15Pin = "1.0.027980001"

// supportMatrix is the data behind SupportMatrix. Keep one row per
// distribution; Resolve and the README both read it.
func supportMatrix() []Support {
	return []Support{
		{Name: "Ubuntu", IDs: []string{"ubuntu"}, Versions: "16.04–24.04", Family: FamilyDebian, Flavor: "ubuntu",
			Releases: []Release{{From: "16.04", To: "24.04", PackageManager: Apt}}},
		{Name: "Debian", IDs: []string{"debian"}, Versions: "9–12", Family: FamilyDebian, Flavor: "debian",
			Releases: []Release{{From: "9.0", To: "12.*", PackageManager: Apt}}},
		{Name: "RHEL", IDs: []string{"rhel"}, Versions: "7.4–7.9, 8.3+, 9.x, 10.x", Family: FamilyRHEL, Flavor: "rhel",
			Releases: []Release{
				{From: "7.4", To: "7.9", PackageManager: Yum},
				{From: "8.3", To: "8.*", PackageManager: Dnf},
				{From: "9.0", To: "9.*", PackageManager: Dnf},
				// In Microsoft's table since May 2026 (RHEL 10.1;
				// MicrosoftDocs/entra-docs PR #1969); rhel/10/prod has
				// aadsshlogin since 10.0.
				{From: "10.0", To: "10.*", PackageManager: Dnf, KeyFile: key2025},
			}},
		{Name: "CentOS", IDs: []string{"centos"}, Versions: "7, 8", Family: FamilyRHEL, Flavor: "centos", FallbackFlavor: "rhel", NoNewer: true,
			Releases: []Release{
				{From: "7.0", To: "7.*", PackageManager: Yum},
				{From: "8.0", To: "8.*", PackageManager: Dnf},
			}},
		{Name: "AlmaLinux", IDs: []string{"almalinux"}, Versions: "8, 9, 10", Family: FamilyRHEL, Flavor: "almalinux", FallbackFlavor: "rhel",
			Releases: rhelRebuild()},
		{Name: "Rocky Linux", IDs: []string{"rocky"}, Versions: "8, 9, 10", Family: FamilyRHEL, Flavor: "rocky", FallbackFlavor: "rhel",
			Releases: rhelRebuild()},
		{Name: "Oracle Linux", IDs: []string{"ol"}, Versions: "8, 9, 10", Family: FamilyRHEL, Flavor: "ol", FallbackFlavor: "rhel",
			Releases: rhelRebuild()},
		{Name: "SLES", IDs: []string{"sles", "sles_sap"}, Versions: "12, 15.x", Family: FamilySUSE, Flavor: "sles",
			Releases: []Release{
				{From: "12.0", To: "12.*", PackageManager: Zypper, PinnedVersion: suse15Pin},
				{From: "15.0", To: "15.5", PackageManager: Zypper, PinnedVersion: suse15Pin},
				{From: "15.6", To: "15.*", PackageManager: Zypper},
			}},
		{Name: "openSUSE Leap", IDs: []string{"opensuse-leap", "opensuse"}, Versions: "42.3, 15.x", Family: FamilySUSE, Flavor: "opensuse", FallbackFlavor: "sles",
			Releases: []Release{
				{From: "42.3", To: "42.3", PackageManager: Zypper, PinnedVersion: suse15Pin, Legacy: true},
				{From: "15.0", To: "15.5", PackageManager: Zypper, PinnedVersion: suse15Pin},
				{From: "15.6", To: "15.*", PackageManager: Zypper},
			}},
		{Name: "CBL-Mariner", IDs: []string{"mariner"}, Versions: "2.0", Family: FamilyMariner, Flavor: "cbl-mariner",
			Releases: []Release{{From: "2.0", To: "2.0", PackageManager: Tdnf, RepoVersion: "2.0"}}},
		{Name: "Azure Linux", IDs: []string{"azurelinux"}, Versions: "3.0", Family: FamilyAzureLinux, Flavor: "azurelinux",
			Releases: []Release{{From: "3.0", To: "3.0", PackageManager: Tdnf, RepoVersion: "3.0"}}},
	}
}

// rhelRebuild is the release list of AlmaLinux, Rocky Linux and Oracle
// Linux: 8 and 9 as Microsoft's table lists them, and 10 like RHEL 10 (same
// repository and key) although the table does not name it yet.
func rhelRebuild() []Release {
	return []Release{
		{From: "8.0", To: "8.*", PackageManager: Dnf},
		{From: "9.0", To: "9.*", PackageManager: Dnf},
		{From: "10.0", To: "10.*", PackageManager: Dnf, KeyFile: key2025, NotListed: true},
	}
}

// SupportMatrix returns the supported distributions. The result is a fresh
// copy: callers may modify it.
func SupportMatrix() []Support {
	return supportMatrix()
}

// aptCodename fills in the apt suite when os-release carries no codename
// (old images); "" when the release is not known.
func aptCodename(id string, major, minor int) string {
	switch id {
	case "ubuntu":
		switch [2]int{major, minor} {
		case [2]int{16, 4}:
			return "xenial"
		case [2]int{18, 4}:
			return "bionic"
		case [2]int{20, 4}:
			return "focal"
		case [2]int{22, 4}:
			return "jammy"
		case [2]int{24, 4}:
			return "noble"
		case [2]int{25, 4}:
			return "plucky"
		case [2]int{25, 10}:
			return "questing"
		case [2]int{26, 4}:
			return "resolute"
		}
	case "debian":
		switch major {
		case 9:
			return "stretch"
		case 10:
			return "buster"
		case 11:
			return "bullseye"
		case 12:
			return "bookworm"
		case 13:
			return "trixie"
		case 14:
			return "forky"
		}
	}
	return ""
}

var codenamePattern = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// Resolve checks a detected distribution and a GOARCH-style architecture
// against the support matrix and derives the Platform.
func Resolve(osr OSRelease, arch string) (Platform, error) {
	debArch := ""
	switch strings.ToLower(arch) {
	case "amd64", "x86_64":
		debArch = "amd64"
	case "arm64", "aarch64":
		debArch = "arm64"
	default:
		return Platform{}, failure.New(failure.Unsupported, nil,
			"Unsupported processor architecture: detected %q on %s. Supported: x86_64 (amd64) and arm64 (aarch64). Learn more at %s",
			arch, describe(osr), LearnMoreURL)
	}

	row, rel, major, minor, listing, ok := match(osr)
	if !ok {
		return Platform{}, unsupported(osr, "")
	}
	p := Platform{
		OS:             osr,
		Arch:           debArch,
		Family:         row.Family,
		PackageManager: rel.PackageManager,
		Flavor:         row.Flavor,
		FallbackFlavor: row.FallbackFlavor,
		Major:          strconv.Itoa(major),
		PinnedVersion:  rel.PinnedVersion,
		KeyFile:        rel.KeyFile,
		Listing:        listing,
	}
	if rel.Flavor != "" {
		p.Flavor = rel.Flavor
	}
	if p.FallbackFlavor == p.Flavor {
		p.FallbackFlavor = ""
	}
	if rel.RepoVersion != "" {
		p.Major = rel.RepoVersion
	}
	switch {
	case listing == Newer:
		// The newest known release's package manager, none of its pins,
		// and no known key: the repository for this release decides.
		p.PinnedVersion, p.KeyFile = "", ""
		if rel.RepoVersion != "" {
			// CBL-Mariner/Azure Linux name folders "major.minor".
			p.Major = fmt.Sprintf("%d.%d", major, minor)
		}
	case p.KeyFile == "":
		p.KeyFile = defaultKeyFile
	}
	switch p.PackageManager {
	case Apt:
		p.SELinuxPolicyPackage = "selinux-policy-default"
		p.Codename = osr.Codename
		if p.Codename == "" {
			p.Codename = aptCodename(osr.ID, major, minor)
		}
		if !codenamePattern.MatchString(p.Codename) {
			return Platform{}, unsupported(osr, "its release codename (VERSION_CODENAME) is missing or invalid")
		}
	case Zypper:
		// The SELinux policy flavour SUSE ships changed with 15.
		if major >= 15 && major < 42 {
			p.SELinuxPolicyPackage = "selinux-policy-targeted"
		} else {
			p.SELinuxPolicyPackage = "selinux-policy-minimum"
		}
	default:
		p.SELinuxPolicyPackage = "selinux-policy-targeted"
	}
	return p, nil
}

// match finds the support-matrix row and release range for osr. A version
// above every range of a supported distribution matches the row's last
// range as Newer; one below or between ranges does not match.
func match(osr OSRelease) (row Support, rel Release, major, minor int, listing Listing, ok bool) {
	major, minor, ok = parseVersion(osr.VersionID)
	if !ok {
		return Support{}, Release{}, 0, 0, Listed, false
	}
	for _, row := range supportMatrix() {
		if !slices.Contains(row.IDs, osr.ID) {
			continue
		}
		for _, rel := range row.Releases {
			if inRange(major, minor, rel.From, rel.To) {
				listing := Listed
				if rel.NotListed {
					listing = RebuildNotListed
				}
				return row, rel, major, minor, listing, true
			}
		}
		if newest, ok := newerThan(row, major, minor); ok {
			return row, newest, major, minor, Newer, true
		}
		return Support{}, Release{}, 0, 0, Listed, false
	}
	return Support{}, Release{}, 0, 0, Listed, false
}

// parseVersion reads "major[.minor[...]]" from a VERSION_ID, also the SUSE
// "15-SP5" spelling. Anything else after the numbers is ignored.
func parseVersion(v string) (major, minor int, ok bool) {
	v = strings.TrimSpace(v)
	n, rest := leadingInt(v)
	if n < 0 {
		return 0, 0, false
	}
	major = n
	switch {
	case strings.HasPrefix(rest, "."):
		rest = rest[1:]
	case strings.HasPrefix(strings.ToUpper(rest), "-SP"):
		rest = rest[3:]
	default:
		return major, 0, true
	}
	if m, _ := leadingInt(rest); m >= 0 {
		minor = m
	}
	return major, minor, true
}

// leadingInt parses the decimal digits at the start of s; -1 if there are
// none or the number is absurdly long.
func leadingInt(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 {
		return -1, s
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil {
		return -1, s
	}
	return n, s[i:]
}

// inRange reports whether major.minor lies within [from, to]; bounds are
// data from the matrix, so a malformed bound simply never matches.
func inRange(major, minor int, from, to string) bool {
	fMaj, fMin, ok := parseVersion(from)
	if !ok {
		return false
	}
	tMaj, tMin, ok := upperBound(to)
	if !ok {
		return false
	}
	if major < fMaj || major == fMaj && minor < fMin {
		return false
	}
	if major > tMaj || major == tMaj && tMin >= 0 && minor > tMin {
		return false
	}
	return true
}

// newerThan reports whether major.minor is a release of row newer than
// every range it lists, and returns the newest range (whose package manager
// the newer release keeps).
func newerThan(row Support, major, minor int) (Release, bool) {
	if row.NoNewer {
		return Release{}, false
	}
	var newest Release
	found := false
	for _, rel := range row.Releases {
		if rel.Legacy {
			if lMaj, _, ok := parseVersion(rel.From); ok && lMaj == major {
				return Release{}, false
			}
			continue
		}
		if !above(major, minor, rel.To) {
			return Release{}, false
		}
		newest, found = rel, true
	}
	return newest, found
}

// above reports whether major.minor lies beyond the upper bound to.
func above(major, minor int, to string) bool {
	tMaj, tMin, ok := upperBound(to)
	if !ok {
		return false
	}
	return major > tMaj || major == tMaj && tMin >= 0 && minor > tMin
}

// upperBound parses an inclusive upper bound "major.minor" or "major.*"
// (minor -1: any minor of that major).
func upperBound(to string) (major, minor int, ok bool) {
	tMajStr, tMinStr, _ := strings.Cut(to, ".")
	tMaj, err := strconv.Atoi(tMajStr)
	if err != nil {
		return 0, 0, false
	}
	tMin := -1 // "*" or missing: any minor
	if tMinStr != "*" && tMinStr != "" {
		if tMin, err = strconv.Atoi(tMinStr); err != nil {
			return 0, 0, false
		}
	}
	return tMaj, tMin, true
}

func describe(osr OSRelease) string {
	name := osr.PrettyName
	if name == "" {
		name = strings.TrimSpace(osr.ID + " " + osr.VersionID)
	}
	if name == "" {
		name = "an unknown distribution"
	}
	return fmt.Sprintf("%s (ID=%s, VERSION_ID=%s)", name, osr.ID, osr.VersionID)
}

func unsupported(osr OSRelease, why string) error {
	if why != "" {
		why = ", but " + why
	}
	return failure.New(failure.Unsupported, nil,
		"Unsupported Linux distribution: detected %s%s. Supported: %s; and newer releases of these distributions once packages.microsoft.com offers aadsshlogin for them. Learn more at %s",
		describe(osr), why, supportedSummary(), LearnMoreURL)
}

// supportedSummary renders the matrix for messages:
// "Ubuntu 16.04–24.04; Debian 9–12; RHEL 7.4–7.9, 8.3+, 9.x; …".
func supportedSummary() string {
	rows := supportMatrix()
	parts := make([]string, 0, len(rows))
	for _, r := range rows {
		parts = append(parts, r.Name+" "+r.Versions)
	}
	return strings.Join(parts, "; ")
}
