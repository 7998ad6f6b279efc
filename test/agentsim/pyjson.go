package agentsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
)

// The agent writes its JSON files with Python's json.dumps defaults:
// separators ", " and ": ", ensure_ascii (non-ASCII as \uXXXX), keys in
// insertion order, floats in repr form. This file reproduces that shape.

// pyPair is one member of an ordered JSON object.
type pyPair struct {
	Key string
	Val any
}

// pyObject is a JSON object whose member order is kept.
type pyObject []pyPair

// pyDumpsGo serialises an arbitrary Go value the way the agent would after
// it parsed the value from the goal state: encoding/json first (tags,
// sorted map keys), then re-emitted in Python's format, keeping order.
func pyDumpsGo(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding settings: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	val, err := readOrdered(dec)
	if err != nil {
		return "", fmt.Errorf("re-reading settings: %w", err)
	}
	return pyDumps(val), nil
}

// readOrdered reads one JSON value from dec into nil, bool, string,
// json.Number, []any or pyObject.
func readOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("reading JSON token: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := pyObject{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("reading JSON key: %w", err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("unexpected JSON key %v", kt)
				}
				v, err := readOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, pyPair{Key: key, Val: v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("reading end of JSON object: %w", err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := readOrdered(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("reading end of JSON array: %w", err)
			}
			return arr, nil
		}
		return nil, errors.New("unexpected JSON delimiter")
	default:
		return t, nil
	}
}

// pyDumps renders a value built from nil, bool, string, json.Number, int,
// []any and pyObject.
func pyDumps(v any) string {
	var b strings.Builder
	pyWrite(&b, v)
	return b.String()
}

func pyWrite(w io.StringWriter, v any) {
	switch t := v.(type) {
	case nil:
		_, _ = w.WriteString("null")
	case bool:
		if t {
			_, _ = w.WriteString("true")
		} else {
			_, _ = w.WriteString("false")
		}
	case string:
		_, _ = w.WriteString(pyString(t))
	case int:
		_, _ = w.WriteString(strconv.Itoa(t))
	case json.Number:
		_, _ = w.WriteString(pyNumber(string(t)))
	case []any:
		_, _ = w.WriteString("[")
		for i, e := range t {
			if i > 0 {
				_, _ = w.WriteString(", ")
			}
			pyWrite(w, e)
		}
		_, _ = w.WriteString("]")
	case pyObject:
		_, _ = w.WriteString("{")
		for i, p := range t {
			if i > 0 {
				_, _ = w.WriteString(", ")
			}
			_, _ = w.WriteString(pyString(p.Key))
			_, _ = w.WriteString(": ")
			pyWrite(w, p.Val)
		}
		_, _ = w.WriteString("}")
	default:
		_, _ = w.WriteString(pyString(fmt.Sprint(t)))
	}
}

// pyString is json.dumps(s) with ensure_ascii=True.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// pyNumber renders a JSON number literal as Python would after json.loads:
// integers unchanged, floats in repr form (1.0, 1e-05, 1e+16).
func pyNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.TrimLeft(lit, "-0") == "" {
			return "0"
		}
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return lit
	}
	return pyFloatRepr(f)
}

func pyFloatRepr(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := strings.HasPrefix(e, "-")
	e = strings.TrimPrefix(e, "-")
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		es := "+"
		if exp < 0 {
			es = "-"
			exp = -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, mant, es, exp)
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}
