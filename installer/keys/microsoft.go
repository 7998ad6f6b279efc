package keys

import "slices"

// Published is a signing key that packages.microsoft.com publishes under
// <base>/keys/.
type Published struct {
	// File is the key's name under <base>/keys/ ("microsoft.asc").
	File string
	// Fingerprint is its primary-key fingerprint: 40 upper-case hex digits.
	Fingerprint string
}

// microsoft lists the keys packages.microsoft.com signs repositories with,
// oldest first. Each repository is signed, metadata and packages alike, with
// exactly one of them: repositories created before May 2025 with
// microsoft.asc, later ones (RHEL 10 and its rebuilds, Debian 13, Ubuntu
// 25.10 and newer, SLES 16) with microsoft-2025.asc. PMC announced a new key
// every year (microsoft/linux-package-repositories#305): adding it is one
// line here, and the support table (distro/platform.go) names it for the
// releases it signs.
//
// Sources: microsoft/linux-package-repositories README "Signature
// Verification" and issues #272, #305, #306;
// rpm-software-management/distribution-gpg-keys keys/microsoft/. The
// testdata copies are the keys as PMC serves them since June 2025
// (microsoft.asc re-issued with SHA-256 binding signatures, same
// fingerprint); TestPublishedKeysMatchTheirFiles checks the fingerprints.
var microsoft = []Published{
	{File: "microsoft.asc", Fingerprint: "BC528686B50D79E339D3721CEB3E94ADBE1229CF"},
	{File: "microsoft-2025.asc", Fingerprint: "AA86F75E427A19DD33346403EE4D7792F748182B"},
}

// Microsoft returns the published keys, oldest first (a fresh copy).
func Microsoft() []Published { return slices.Clone(microsoft) }

// DefaultFile is the key of every repository older than the second key.
const DefaultFile = "microsoft.asc"

// MicrosoftFingerprints returns the fingerprints of every published key,
// oldest first: the default pin list.
func MicrosoftFingerprints() []string {
	out := make([]string, len(microsoft))
	for i, k := range microsoft {
		out[i] = k.Fingerprint
	}
	return out
}

// Files returns the published key files, oldest first.
func Files() []string {
	out := make([]string, len(microsoft))
	for i, k := range microsoft {
		out[i] = k.File
	}
	return out
}

// NewestFile is the key PMC signs its newest repositories with.
func NewestFile() string { return microsoft[len(microsoft)-1].File }

// IsPublishedFile reports whether name is one of the published key files.
func IsPublishedFile(name string) bool {
	return slices.ContainsFunc(microsoft, func(k Published) bool { return k.File == name })
}
