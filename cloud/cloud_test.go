package cloud

import "testing"

func TestForAzEnvironment(t *testing.T) {
	cases := []struct {
		env             string
		name, base, pfx string
		login, pas      string
		known           bool
	}{
		{"AzurePublicCloud", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", true},
		{"AZUREPUBLICCLOUD\n", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", true},
		{"AzureCloud", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", true},
		{"AzureUSGovernmentCloud", NameGovernment, packagesMicrosoft, "", "login.microsoftonline.us", "pasff.usgovcloudapi.net", true},
		{"azureusgovernment", NameGovernment, packagesMicrosoft, "", "login.microsoftonline.us", "pasff.usgovcloudapi.net", true},
		{"AzureChinaCloud", NameChina, packagesMicrosoft, "", "login.chinacloudapi.cn", "pas.chinacloudapi.cn", true},
		{"AzureChina", NameChina, packagesMicrosoft, "", "login.chinacloudapi.cn", "pas.chinacloudapi.cn", true},
		{"USNat", NameUSNat, "https://repodepot.azure.eaglex.ic.gov", "/microsoft", "", "", true},
		{"usnat", NameUSNat, "https://repodepot.azure.eaglex.ic.gov", "/microsoft", "", "", true},
		{"USSec", NameUSSec, "https://repodepot.azure.microsoft.scloud", "/microsoft", "", "", true},
		{"", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", false},
		{"AzureGermanCloud", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", false},
		{"Mars", NamePublic, packagesMicrosoft, "", "login.microsoftonline.com", "pas.windows.net", false},
	}
	for _, tc := range cases {
		c, known := ForAzEnvironment(tc.env)
		if known != tc.known || c.Name != tc.name || c.RepositoryBase != tc.base || c.RepositoryPrefix != tc.pfx ||
			c.LoginHost != tc.login || c.PASHost != tc.pas {
			t.Errorf("ForAzEnvironment(%q) = %+v, %v", tc.env, c, known)
		}
	}
}
