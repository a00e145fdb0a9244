package segment

import (
	"errors"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// lpcmSegment builds a small segment file (init + 3 parts of LPCM) the
// way the writer does, without a store.
func lpcmSegment(tb testing.TB) []byte {
	tb.Helper()
	var buf seekablebuffer.Buffer
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 8000,
		Codec: &mp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}}}
	if err := init.Marshal(&buf); err != nil {
		tb.Fatal(err)
	}
	for p := 0; p < 3; p++ {
		pt := &fmp4.PartTrack{ID: 1, BaseTime: uint64(p * 800)}
		for i := 0; i < 5; i++ {
			pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: 160, Payload: []byte{byte(p), byte(i), 2, 3}})
		}
		if err := (fmp4.Part{SequenceNumber: uint32(p + 1), Tracks: []*fmp4.PartTrack{pt}}).Marshal(&buf); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzSegmentReader feeds arbitrary bytes to the segment parser used by
// recovery and export: it returns complete parts or an error, never panics,
// and what it accepts stays inside the input.
func FuzzSegmentReader(f *testing.F) {
	seg := lpcmSegment(f)
	f.Add(seg)
	f.Add(seg[:len(seg)-7])
	f.Add(seg[:len(seg)/2])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 'f', 't', 'y', 'p', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := parseSegment(data)
		if err != nil {
			if ps != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if ps.ValidLen > int64(len(data)) || ps.ValidLen < ps.InitEnd {
			t.Fatalf("valid length %d of %d bytes (init %d)", ps.ValidLen, len(data), ps.InitEnd)
		}
		prev := ps.InitEnd
		for _, p := range ps.Parts {
			if p.End <= prev || p.End > ps.ValidLen {
				t.Fatalf("part end %d after %d, valid %d", p.End, prev, ps.ValidLen)
			}
			prev = p.End
			for _, pt := range p.Part.Tracks {
				for _, smp := range pt.Samples {
					if off := ps.payloadOffset(smp.Payload); off < 0 || off+int64(len(smp.Payload)) > p.End {
						t.Fatalf("payload at %d+%d outside part ending at %d", off, len(smp.Payload), p.End)
					}
				}
			}
		}
		if (ps.Torn == nil) != (ps.ValidLen == int64(len(data))) {
			t.Fatalf("torn=%v but valid %d of %d", ps.Torn, ps.ValidLen, len(data))
		}
		_ = ps.mediaDuration()
	})
}

// FuzzValidateStreamID checks that every accepted id is one safe path
// element and every rejection wraps ErrInvalidStreamID.
func FuzzValidateStreamID(f *testing.F) {
	for _, s := range []string{"cam1", "", ".", "..", "a/b", "a\x00", "x.y-z_1", "/etc/passwd", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateStreamID(id)
		if err != nil {
			if !errors.Is(err, ErrInvalidStreamID) {
				t.Fatalf("%q: %v does not wrap ErrInvalidStreamID", id, err)
			}
			return
		}
		if id == "" || id == "." || id == ".." || len(id) > 128 {
			t.Fatalf("%q accepted", id)
		}
		for _, c := range []byte(id) {
			if c == '/' || c == '\\' || c < 0x20 || c >= 0x7f || c == ' ' {
				t.Fatalf("%q accepted with byte %#x", id, c)
			}
		}
		rel := segmentRelPath(id, testWall0, ClassArchive, OriginLive, "n")
		if fn, err := parseSegmentRelPath(rel); err != nil || fn.stream != id {
			t.Fatalf("%q: path %s does not round-trip: %v", id, rel, err)
		}
	})
}

// FuzzIndexEntry: arbitrary index values decode to an error, never a panic.
func FuzzIndexEntry(f *testing.F) {
	e := &entry{Stream: "cam1", Start: testWall0, End: testWall0.Add(time.Second), Bytes: 10, Node: "n",
		Path: segmentRelPath("cam1", testWall0, ClassArchive, OriginLive, "n")}
	f.Add(segmentKey(e), e.encode())
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if got, err := decodeEntry(k, v); err == nil {
			if string(segmentKey(got)) != string(k) || string(got.encode()) != string(v) {
				t.Fatalf("accepted entry does not round-trip")
			}
		}
	})
}
