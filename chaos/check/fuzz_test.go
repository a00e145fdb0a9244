package check

import (
	"encoding/binary"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// FuzzExtractFrames: any input gives frames or an error, never a panic.
// The seeds are the real recording cut to its first samples without their
// filler NAL units: the fuzzer minimises every new input, which is slow
// for inputs of kilobytes.
func FuzzExtractFrames(f *testing.F) {
	r := loadRecording(f)
	small := edit(f, r.mp4, func(s []*pmp4.Sample) []*pmp4.Sample {
		s = s[:2]
		for _, smp := range s {
			pl, _ := smp.GetPayload()
			var out []byte
			for len(pl) >= 4 {
				n := int(binary.BigEndian.Uint32(pl))
				if pl[4]&0x1F != 12 { // filler data
					out = append(out, pl[:4+n]...)
				}
				pl = pl[4+n:]
			}
			smp.PayloadSize = uint32(len(out))
			smp.GetPayload = func() ([]byte, error) { return out, nil }
		}
		return s
	})
	if fr, err := ExtractFrames(small); err != nil || len(fr) != 2 || !fr[1].Stamped {
		f.Fatalf("seed: %v %v", fr, err)
	}
	f.Add(small)
	f.Add(toFMP4(f, small, 1))
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, err := ExtractFrames(b)
		if err != nil {
			return
		}
		if len(frames) == 0 {
			t.Fatal("no error and no frames")
		}
		for i, fr := range frames {
			if fr.Index != i {
				t.Fatalf("frame %d has index %d", i, fr.Index)
			}
		}
	})
}
