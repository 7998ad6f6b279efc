package keys

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// OpenPGP packet tags (RFC 9580 §5) that make up a transferable public key.
const (
	tagSignature     = 2
	tagSecretKey     = 5
	tagPublicKey     = 6
	tagSecretSubkey  = 7
	tagMarker        = 10
	tagTrust         = 12
	tagUserID        = 13
	tagPublicSubkey  = 14
	tagUserAttribute = 17
)

// packet is one OpenPGP packet: its tag and body (header removed).
type packet struct {
	tag  byte
	body []byte
}

// readPackets splits binary OpenPGP data into packets. It accepts both
// header formats but not partial body lengths, which are only allowed for
// data packets and never occur in keys.
func readPackets(data []byte) ([]packet, error) {
	var out []packet
	for len(data) > 0 {
		h := data[0]
		if h&0x80 == 0 {
			return nil, fmt.Errorf("byte 0x%02x is not an OpenPGP packet header", h)
		}
		var tag byte
		var n, hdr int
		if h&0x40 != 0 { // new format
			tag = h & 0x3f
			if len(data) < 2 {
				return nil, errors.New("truncated packet header")
			}
			switch l := data[1]; {
			case l < 192:
				n, hdr = int(l), 2
			case l < 224:
				if len(data) < 3 {
					return nil, errors.New("truncated packet header")
				}
				n, hdr = (int(l)-192)<<8+int(data[2])+192, 3
			case l == 255:
				if len(data) < 6 {
					return nil, errors.New("truncated packet header")
				}
				v := binary.BigEndian.Uint32(data[2:6])
				if v > uint32(len(data)) {
					return nil, errors.New("truncated packet")
				}
				n, hdr = int(v), 6
			default:
				return nil, errors.New("partial body length in a key packet")
			}
		} else { // old format
			tag = (h >> 2) & 0x0f
			switch h & 3 {
			case 0:
				if len(data) < 2 {
					return nil, errors.New("truncated packet header")
				}
				n, hdr = int(data[1]), 2
			case 1:
				if len(data) < 3 {
					return nil, errors.New("truncated packet header")
				}
				n, hdr = int(binary.BigEndian.Uint16(data[1:3])), 3
			case 2:
				if len(data) < 5 {
					return nil, errors.New("truncated packet header")
				}
				v := binary.BigEndian.Uint32(data[1:5])
				if v > uint32(len(data)) {
					return nil, errors.New("truncated packet")
				}
				n, hdr = int(v), 5
			case 3: // indeterminate: the rest of the data
				n, hdr = len(data)-1, 1
			}
		}
		if hdr+n > len(data) {
			return nil, errors.New("truncated packet")
		}
		out = append(out, packet{tag: tag, body: data[hdr : hdr+n]})
		data = data[hdr+n:]
	}
	return out, nil
}

// writePacket appends a packet with an old-format header when the tag allows
// it, because old rpm and gpgv releases parse that form most reliably, and a
// new-format header otherwise.
func writePacket(buf *bytes.Buffer, tag byte, body []byte) {
	n := len(body)
	if tag < 16 {
		switch {
		case n < 1<<8:
			buf.WriteByte(0x80 | tag<<2)
			buf.WriteByte(byte(n))
		case n < 1<<16:
			buf.WriteByte(0x80 | tag<<2 | 1)
			buf.Write(binary.BigEndian.AppendUint16(nil, uint16(n)))
		default:
			buf.WriteByte(0x80 | tag<<2 | 2)
			buf.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
		}
	} else {
		buf.WriteByte(0xc0 | tag)
		switch {
		case n < 192:
			buf.WriteByte(byte(n))
		case n < 8384:
			buf.WriteByte(byte((n-192)>>8) + 192)
			buf.WriteByte(byte(n - 192))
		default:
			buf.WriteByte(0xff)
			buf.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
		}
	}
	buf.Write(body)
}

// publicPart returns the public-key portion of a key packet body: the whole
// body for public keys, the leading public fields for secret keys (so secret
// material is never carried over).
func publicPart(p packet) ([]byte, error) {
	b := p.body
	if p.tag == tagPublicKey || p.tag == tagPublicSubkey {
		return b, nil
	}
	if len(b) < 6 {
		return nil, errors.New("truncated key packet")
	}
	switch b[0] {
	case 5, 6:
		// v5/v6 state the length of the public key material.
		if len(b) < 10 {
			return nil, errors.New("truncated key packet")
		}
		n := int(binary.BigEndian.Uint32(b[6:10]))
		if n < 0 || 10+n > len(b) {
			return nil, errors.New("truncated key packet")
		}
		return b[:10+n], nil
	case 4:
		n, err := publicFieldsLen(b[5], b[6:])
		if err != nil {
			return nil, err
		}
		return b[:6+n], nil
	}
	return nil, fmt.Errorf("unsupported key packet version %d", b[0])
}

// publicFieldsLen measures the algorithm-specific public fields of a v4 key.
func publicFieldsLen(algo byte, b []byte) (int, error) {
	off := 0
	mpi := func() error {
		if off+2 > len(b) {
			return errors.New("truncated MPI")
		}
		bits := int(binary.BigEndian.Uint16(b[off:]))
		off += 2 + (bits+7)/8
		if off > len(b) {
			return errors.New("truncated MPI")
		}
		return nil
	}
	lenPrefixed := func() error { // OID or KDF parameters: one length octet
		if off >= len(b) {
			return errors.New("truncated field")
		}
		off += 1 + int(b[off])
		if off > len(b) {
			return errors.New("truncated field")
		}
		return nil
	}
	fixed := func(n int) error {
		off += n
		if off > len(b) {
			return errors.New("truncated key")
		}
		return nil
	}
	var steps []func() error
	switch algo {
	case 1, 2, 3: // RSA
		steps = []func() error{mpi, mpi}
	case 16, 20: // Elgamal
		steps = []func() error{mpi, mpi, mpi}
	case 17: // DSA
		steps = []func() error{mpi, mpi, mpi, mpi}
	case 18: // ECDH
		steps = []func() error{lenPrefixed, mpi, lenPrefixed}
	case 19, 22: // ECDSA, EdDSA (legacy)
		steps = []func() error{lenPrefixed, mpi}
	case 25, 27: // X25519, Ed25519
		steps = []func() error{func() error { return fixed(32) }}
	case 26: // X448
		steps = []func() error{func() error { return fixed(56) }}
	case 28: // Ed448
		steps = []func() error{func() error { return fixed(57) }}
	default:
		return 0, fmt.Errorf("unknown public-key algorithm %d", algo)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// fingerprint computes the primary-key fingerprint (RFC 9580 §5.5.4) of a
// public key packet body, in upper-case hex.
func fingerprint(pub []byte) (string, error) {
	if len(pub) == 0 {
		return "", errors.New("empty key packet")
	}
	switch pub[0] {
	case 4:
		if len(pub) > 0xffff {
			return "", errors.New("key packet too long")
		}
		h := sha1.New()
		h.Write([]byte{0x99, byte(len(pub) >> 8), byte(len(pub))})
		h.Write(pub)
		return upperHex(h.Sum(nil)), nil
	case 5, 6:
		prefix := byte(0x9a)
		if pub[0] == 6 {
			prefix = 0x9b
		}
		h := sha256.New()
		h.Write([]byte{prefix})
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(pub))))
		h.Write(pub)
		return upperHex(h.Sum(nil)), nil
	}
	return "", fmt.Errorf("unsupported key packet version %d", pub[0])
}

func upperHex(b []byte) string {
	return string(bytes.ToUpper([]byte(hex.EncodeToString(b))))
}

// entity is one transferable public key: the primary key and what follows
// it up to the next primary key, re-serialized with public parts only.
type entity struct {
	fingerprint string
	packets     []byte
}

// splitEntities groups packets into transferable public keys. Secret keys
// are reduced to their public part; trust and unknown packets are dropped
// (they are local to the exporting keyring).
func splitEntities(pkts []packet) ([]entity, error) {
	var out []entity
	var cur *bytes.Buffer
	var curFP string
	flush := func() {
		if cur != nil {
			out = append(out, entity{fingerprint: curFP, packets: cur.Bytes()})
		}
	}
	for _, p := range pkts {
		switch p.tag {
		case tagPublicKey, tagSecretKey:
			flush()
			pub, err := publicPart(p)
			if err != nil {
				return nil, err
			}
			fp, err := fingerprint(pub)
			if err != nil {
				return nil, err
			}
			cur, curFP = &bytes.Buffer{}, fp
			writePacket(cur, tagPublicKey, pub)
		case tagPublicSubkey, tagSecretSubkey:
			if cur == nil {
				return nil, errors.New("subkey before any primary key")
			}
			pub, err := publicPart(p)
			if err != nil {
				return nil, err
			}
			writePacket(cur, tagPublicSubkey, pub)
		case tagSignature, tagUserID, tagUserAttribute:
			if cur == nil {
				return nil, fmt.Errorf("packet type %d before any key", p.tag)
			}
			writePacket(cur, p.tag, p.body)
		case tagMarker, tagTrust:
			// ignorable by definition
		default:
			if cur == nil {
				return nil, fmt.Errorf("packet type %d is not part of a key", p.tag)
			}
		}
	}
	flush()
	if len(out) == 0 {
		return nil, errors.New("no key packet")
	}
	return out, nil
}
