package settings

import (
	"encoding/json"
	"testing"
)

func benchParsePublic(b *testing.B, raw string) {
	data := json.RawMessage(raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublic(data); err != nil {
			b.Fatal(err)
		}
	}
}

// The three shapes users send: nothing, pinned keys, a mirror with keys.
func BenchmarkParsePublicEmpty(b *testing.B) { benchParsePublic(b, `{}`) }

func BenchmarkParsePublicPinned(b *testing.B) {
	benchParsePublic(b, `{"signingKeyFingerprints": ["BC528686B50D79E339D3721CEB3E94ADBE1229CF"]}`)
}

func BenchmarkParsePublicMirror(b *testing.B) {
	benchParsePublic(b, `{"repositoryUrl": "https://mirror.example.test/pmc", "signingKeyFingerprints": ["BC52 8686 B50D 79E3 39D3  721C EB3E 94AD BE12 29CF", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]}`)
}

func BenchmarkNormalizeFingerprint(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := NormalizeFingerprint("bc52 8686 b50d 79e3 39d3  721c eb3e 94ad be12 29cf"); !ok {
			b.Fatal("not accepted")
		}
	}
}
