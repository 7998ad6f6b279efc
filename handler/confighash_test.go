package handler

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/aadsshlogin/handler/settings"
)

// TestConfigHashVersion: the aadsshloginVersion setting is part of the
// hash, so enable notices when it is set, changed or removed, while the
// hash of settings without it stays what earlier versions recorded (no
// needless full run after an update of the extension).
func TestConfigHashVersion(t *testing.T) {
	none := configHash(settings.Public{})
	old := configHash(settings.Public{AADSSHLoginVersion: "1.0.030000001"})
	cur := configHash(settings.Public{AADSSHLoginVersion: "1.0.031620001"})
	if none == old || old == cur || none == cur {
		t.Errorf("hashes do not tell the versions apart: %s %s %s", none, old, cur)
	}
	earlier := "repositoryUrl=\n"
	for _, fp := range (settings.Public{}).Fingerprints() {
		earlier += "fingerprint=" + fp + "\n"
	}
	sum := sha256.Sum256([]byte(earlier))
	if want := hex.EncodeToString(sum[:]); none != want {
		t.Errorf("the hash without the setting changed: %s, earlier versions recorded %s", none, want)
	}
}
