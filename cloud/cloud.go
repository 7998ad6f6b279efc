// Package cloud maps the Azure cloud a VM runs in (IMDS azEnvironment) to the
// endpoints the handler and the installed packages need: the package
// repository, and the Entra login and PAS hosts users' logins talk to.
package cloud

import (
	"net/url"
	"strings"

	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// Cloud holds one cloud's endpoints.
type Cloud struct {
	// Name is the canonical azEnvironment value ("AzurePublicCloud",
	// "AzureUSGovernmentCloud", "AzureChinaCloud", "USNat", "USSec").
	Name string
	// RepositoryBase is the scheme and host packages come from.
	RepositoryBase string
	// RepositoryPrefix is prepended to repository paths ("/microsoft" in the
	// air-gapped clouds), but not to keys/microsoft.asc, which the shipped
	// extension downloads from the bare host there.
	RepositoryPrefix string
	// LoginHost is the Entra ID authority host; empty for USNat/USSec, whose
	// endpoints are not public.
	LoginHost string
	// PASHost is the host pam_aad asks for RBAC decisions; empty for
	// USNat/USSec.
	PASHost string
}

// Canonical names, as IMDS reports them.
const (
	NamePublic     = "AzurePublicCloud"
	NameGovernment = "AzureUSGovernmentCloud"
	NameChina      = "AzureChinaCloud"
	NameUSNat      = "USNat"
	NameUSSec      = "USSec"
)

const packagesMicrosoft = "https://packages.microsoft.com"

// Public returns the Azure public cloud.
func Public() Cloud {
	return Cloud{
		Name:           NamePublic,
		RepositoryBase: packagesMicrosoft,
		LoginHost:      authorityHost(azcloud.AzurePublic),
		PASHost:        "pas.windows.net",
	}
}

// ForAzEnvironment maps an IMDS azEnvironment value to its cloud. IMDS
// documentation shows both "AzurePublicCloud" and "AZUREPUBLICCLOUD", and the
// Azure CLI and SDKs use shorter names ("AzureCloud", "AzureUSGovernment"),
// so the comparison ignores case and accepts those aliases. An empty or
// unknown value (including the retired AzureGermanCloud) yields the public
// cloud with known == false: that is what the shipped extension installs
// from, and the caller surfaces a warning instead of failing.
func ForAzEnvironment(env string) (c Cloud, known bool) {
	key := strings.ToLower(strings.TrimSpace(env))
	switch key {
	case "azurepubliccloud", "azurecloud", "azurepublic", "public":
		return Public(), true
	case "azureusgovernmentcloud", "azureusgovernment", "azuregovernment", "usgovernment":
		return Cloud{
			Name:           NameGovernment,
			RepositoryBase: packagesMicrosoft,
			LoginHost:      authorityHost(azcloud.AzureGovernment),
			PASHost:        "pasff.usgovcloudapi.net",
		}, true
	case "azurechinacloud", "azurechina", "china":
		return Cloud{
			Name:           NameChina,
			RepositoryBase: packagesMicrosoft,
			LoginHost:      authorityHost(azcloud.AzureChina),
			PASHost:        "pas.chinacloudapi.cn",
		}, true
	case "usnat":
		return Cloud{
			Name:             NameUSNat,
			RepositoryBase:   "https://repodepot.azure.eaglex.ic.gov",
			RepositoryPrefix: "/microsoft",
		}, true
	case "ussec":
		return Cloud{
			Name:             NameUSSec,
			RepositoryBase:   "https://repodepot.azure.microsoft.scloud",
			RepositoryPrefix: "/microsoft",
		}, true
	}
	return Public(), false
}

// authorityHost takes the host out of azcore's authority URL, so the login
// hosts follow the SDK rather than a second copy of the same constants.
func authorityHost(cfg azcloud.Configuration) string {
	u, err := url.Parse(cfg.ActiveDirectoryAuthorityHost)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
