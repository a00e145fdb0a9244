package catalog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)

func liveEntry() Entry {
	s := validStream()
	s.Username, s.Password = "admin", "pässword:@/"
	s.CreateTime, s.UpdateTime = t0, t0.Add(time.Second)
	return Entry{ID: s.ID, Version: Version{WallMS: t0.UnixMilli(), Logical: 7, Node: "node-a"}, Stream: s}
}

func tombstone() Entry {
	return Entry{ID: "cam-1", Version: Version{WallMS: t0.UnixMilli(), Logical: 0, Node: "node-b"}, Deleted: true}
}

// reseal replaces the trailing checksum, so a test (or the fuzzer) reaches
// the checks behind it.
func reseal(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	body := b[:len(b)-4]
	out := append([]byte(nil), body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

func TestEncodeRoundTrip(t *testing.T) {
	maxed := liveEntry()
	maxed.ID = strings.Repeat("z", MaxIDLen)
	maxed.Stream.ID = maxed.ID
	maxed.Stream.Labels = manyLabels(MaxLabels)
	maxed.Stream.Replicas = MaxReplicas
	maxed.Stream.ArchiveRetention = MaxArchiveRetention
	maxed.Version = Version{WallMS: 1<<62 + 5, Logical: 1<<32 - 1, Node: strings.Repeat("n", MaxNodeIDLen)}
	noLabels := liveEntry()
	noLabels.Stream.Labels = nil
	noLabels.Stream.Enabled = false
	noLabels.Stream.Username, noLabels.Stream.Password = "", ""

	maxed.Stream.Weight, maxed.Stream.Scope, maxed.Stream.StrictScope = MaxWeight, strings.Repeat("k=v/", MaxScopeLen/4-1)+"k=vv", true
	scoped := liveEntry()
	scoped.Stream.Scope = "zone=hq"
	weighted := liveEntry()
	weighted.Stream.Weight = 8

	for name, e := range map[string]Entry{"live": liveEntry(), "tombstone": tombstone(), "max": maxed, "bare": noLabels, "scoped": scoped, "weighted": weighted} {
		t.Run(name, func(t *testing.T) {
			b := EncodeEntry(e)
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
			}
			// Format 1 unless a field of format 2 is set: nodes of the
			// version before read every entry that does not use them.
			if v2 := e.Stream.Weight > 1 || e.Stream.Scope != "" || e.Stream.StrictScope; (b[0] == formatV2) != v2 {
				t.Errorf("format %d for %s", b[0], name)
			}
			if again := EncodeEntry(got); string(again) != string(b) {
				t.Fatalf("encoding is not canonical")
			}
		})
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	good := EncodeEntry(liveEntry())
	// Every single-bit flip and every truncation fails (the checksum).
	for i := range good {
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			if _, err := DecodeEntry(b); !errors.Is(err, ErrCorruptEntry) {
				t.Fatalf("flip byte %d bit %d: err = %v", i, bit, err)
			}
		}
	}
	for n := range len(good) {
		if _, err := DecodeEntry(good[:n]); !errors.Is(err, ErrCorruptEntry) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}

	// Structural problems behind a correct checksum.
	body := good[:len(good)-4]
	with := func(f func(b []byte) []byte) []byte {
		return reseal(append(f(append([]byte(nil), body...)), 0, 0, 0, 0))
	}
	tomb := EncodeEntry(tombstone())
	tombBody := tomb[:len(tomb)-4]
	e := liveEntry()
	e.Stream.Replicas = 9
	badReplicas := EncodeEntry(e)
	e = liveEntry()
	e.Stream.URL = "http://cam/x"
	badURL := EncodeEntry(e)
	e = liveEntry()
	e.Version.Node = ""
	noNode := EncodeEntry(e)
	e = liveEntry()
	e.Version.WallMS = 0
	zeroWall := EncodeEntry(e)
	e = liveEntry()
	e.Stream.Labels = map[string]string{"b": "1", "a": "2"}
	twoLabels := EncodeEntry(e)
	// Swap the two labels to break the order: a,2,b,1 → b,1,a,2.
	swapped := append([]byte(nil), twoLabels...)
	idx := strings.Index(string(swapped), "\x01a\x012\x01b\x011")
	copy(swapped[idx:], "\x01b\x011\x01a\x012")

	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"unknown format", with(func(b []byte) []byte { b[0] = 5; return b }), "unknown format 5"},
		{"stream as a holding record", with(func(b []byte) []byte { b[0] = 4; return b }), "format 4 under id"},
		{"stream as a node record", with(func(b []byte) []byte { b[0] = 3; return b }), "node record with flags"},
		{"unknown flag", with(func(b []byte) []byte { b[1] |= 0x80; return b }), "unknown flags"},
		{"trailing byte", with(func(b []byte) []byte { return append(b, 0) }), "trailing"},
		{"tombstone enabled", reseal(append(append([]byte{tombBody[0], flagDeleted | flagEnabled}, tombBody[2:]...), 0, 0, 0, 0)), "enabled"},
		{"truncated field", with(func(b []byte) []byte { return b[:len(b)-3] }), ""},
		{"bad replicas", badReplicas, "replicas"},
		{"bad url", badURL, "url: scheme"},
		{"no node", noNode, "node id must not be empty"},
		{"zero wall", zeroWall, "wall time must be positive"},
		{"labels out of order", reseal(swapped), "strictly increasing"},
		{"huge length", reseal(append(append([]byte{formatV1, 0, 1, 0}, binary.AppendUvarint(nil, 1<<40)...), 0, 0, 0, 0)), "exceeds"},
		{"overlong varint", reseal(append([]byte{formatV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, 0, 0, 0)), "bad varint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.b)
			if !errors.Is(err, ErrCorruptEntry) {
				t.Fatalf("err = %v, want ErrCorruptEntry", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeEntry: arbitrary bytes decode to an error or to a valid entry
// that re-encodes to an equal entry; never a panic. Each input is tried as
// is and with its checksum repaired, so the fuzzer gets past the checksum.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(liveEntry()))
	f.Add(EncodeEntry(tombstone()))
	e := liveEntry()
	e.Stream.Labels = nil
	f.Add(EncodeEntry(e))
	f.Add([]byte{})
	f.Add([]byte{formatV1, 0, 0, 0, 0, 0})
	h := Holding{Stream: "cam", Node: "n1", Since: t0, Until: t0.Add(time.Hour)}
	f.Add(EncodeEntry(Entry{ID: HoldEntryID("cam", "n1"), Version: Version{WallMS: t0.UnixMilli(), Node: "n1"}, Hold: h}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, reseal(b)} {
			e, err := DecodeEntry(in)
			if err != nil {
				if !errors.Is(err, ErrCorruptEntry) {
					t.Fatalf("error %v does not wrap ErrCorruptEntry", err)
				}
				continue
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("decoded entry is invalid: %v", err)
			}
			again, err := DecodeEntry(EncodeEntry(e))
			if err != nil || !reflect.DeepEqual(again, e) {
				t.Fatalf("re-encode: %v\n got %#v\nwant %#v", err, again, e)
			}
		}
	})
}

// FuzzStreamValidate: Normalize and Validate never panic on any field
// values; a stream they accept encodes, decodes back equal, and its
// RecordingURL is the URL with the credentials.
func FuzzStreamValidate(f *testing.F) {
	f.Add("cam-1", "rtsp://u:p@cam:554/x?y=1", "", "", 2, int64(time.Hour), "site", "garage")
	f.Add("..", "rtsps://[::1]/", "user", "pw", 0, int64(0), "", "")
	f.Add("a", "rtsp://%zz", "", "p", -1, int64(-1), "A", "\xff")
	f.Fuzz(func(t *testing.T, id, rawURL, user, pass string, replicas int, retention int64, lk, lv string) {
		s := Stream{ID: id, URL: rawURL, Username: user, Password: pass, Replicas: replicas,
			ArchiveRetention: time.Duration(retention), Labels: map[string]string{lk: lv}, Enabled: true}
		_ = s.Validate()
		s.Normalize()
		if err := s.Validate(); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Validate error %v is not a FieldError", err)
			}
			return
		}
		_ = s.String()
		_ = s.RecordingURL()
		s.CreateTime, s.UpdateTime = t0, t0
		e := Entry{ID: s.ID, Version: Version{WallMS: 1, Node: "n"}, Stream: s}
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatalf("valid stream does not round-trip: %v", err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
		}
	})
}
