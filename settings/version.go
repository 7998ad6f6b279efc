package settings

import (
	"encoding/json"
	"regexp"
)

const keyVersion = "aadsshloginVersion"

// versionPattern is the version syntax of aadsshlogin on
// packages.microsoft.com: three dot-separated decimal numbers, such as
// 1.0.031620001. Nothing else is accepted: no distribution revision (every
// rpm seen on packages.microsoft.com has release 1 and the .deb files carry
// none, so there is nothing to choose between), no epoch, no comparison
// operator, no glob and
// no leading dash, so the value can neither widen the match nor become an
// option of apt-get, dnf or zypper.
var versionPattern = regexp.MustCompile(`^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,12}$`)

// ValidPackageVersion reports whether s has the version syntax of
// aadsshlogin (see versionPattern).
func ValidPackageVersion(s string) bool { return versionPattern.MatchString(s) }

func parseVersion(value json.RawMessage) (string, error) {
	if string(value) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", bad("publicSettings.%s must be a string with an aadsshlogin version such as \"1.0.031620001\", got %s.", keyVersion, clip(string(value)))
	}
	if !ValidPackageVersion(s) {
		return "", bad("publicSettings.%s must be an aadsshlogin version of three dot-separated numbers such as \"1.0.031620001\" (no revision, operator or wildcard), got %q. Use a version packages.microsoft.com offers, or remove the key to install the newest.",
			keyVersion, clip(s))
	}
	return s, nil
}
