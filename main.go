// Command aadsshlogin-handler is the extension handler of
// Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux: the Azure Linux guest
// agent runs it with one of the verbs install, enable, disable, update and
// uninstall (see HandlerManifest.json). It installs aadsshlogin so that users
// can SSH into the VM with their Microsoft Entra ID identity.
package main

import (
	"os"
	"path/filepath"

	"github.com/aadsshlogin/handler/handler"
	"github.com/aadsshlogin/handler/httpclient"
)

// version is set at build time from the VERSION file (scripts/build.sh).
var version = "0.0.0.0"

func main() {
	exeDir := "."
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		exeDir = filepath.Dir(exe)
	}
	code := handler.Main(handler.Options{
		Version: version,
		Args:    os.Args,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		ExeDir:  exeDir,
		// Key and repository downloads honour http_proxy, https_proxy and
		// no_proxy, as the package managers do.
		HTTP: httpclient.New(httpclient.Options{UseProxy: true}),
	})
	os.Exit(int(code))
}
