package check

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file is a small ISO BMFF reader of its own: the checker must not
// trust the code that wrote the file (segment uses mediacommon), and it
// must survive any input (FuzzExtractFrames). It reads what an H.264
// recording needs: track ids, handlers, time scales, the avcC NAL unit
// length size, and the sample tables of a progressive MP4 (moov with
// stts, ctts, stss, stsz, stsc, stco/co64) or of a fragmented one (moof
// with tfhd, tfdt, trun, defaults from trex).

// ErrMP4 is wrapped by every error about a malformed file.
var ErrMP4 = errors.New("malformed MP4")

// File is what ParseMP4 read.
type File struct {
	Tracks     []*Track
	Fragmented bool
}

// Track is one track of a File.
type Track struct {
	ID        uint32
	Handler   string // "vide", "soun", ...
	TimeScale uint32
	Codec     string // sample entry type: "avc1", "mp4a", ...
	// NALULength is the size of the NAL unit length prefix (avcC
	// lengthSizeMinusOne + 1), 0 for other codecs.
	NALULength int
	Samples    []Sample
}

// Sample is one sample of a Track: where its bytes are and its time in
// ticks of the track's time scale.
type Sample struct {
	DTS       int64
	PTSOffset int32
	Duration  uint32
	Sync      bool
	Offset    int64
	Size      uint32
}

// maxSamples bounds the samples of a file (a day at 120 fps in one clip
// is 10 million; anything claiming more is garbage).
const maxSamples = 1 << 24

type box struct {
	typ     string
	payload []byte
	start   int64 // offset of the box header in the file
}

func mp4err(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMP4}, args...)...)
}

// boxes splits b (at file offset base) into boxes.
func boxes(b []byte, base int64) ([]box, error) {
	var out []box
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, mp4err("%d stray bytes at offset %d", len(b), base)
		}
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil, mp4err("box %q at %d: truncated large size", typ, base)
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, mp4err("box %q at %d: size %d, %d bytes left", typ, base, size, len(b))
		}
		out = append(out, box{typ: typ, payload: b[hdr:size], start: base})
		b = b[size:]
		base += int64(size)
	}
	return out, nil
}

func child(bs []box, typ string) *box {
	for i := range bs {
		if bs[i].typ == typ {
			return &bs[i]
		}
	}
	return nil
}

// reader reads big-endian fields with bounds checks; the first short read
// sets err and every later read returns 0.
type reader struct {
	b   []byte
	err error
	box string
}

func (r *reader) need(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = mp4err("box %q truncated", r.box)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	if v := r.need(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.need(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// full reads a full box header: version and flags.
func (r *reader) full() (uint8, uint32) {
	v := r.u32()
	return uint8(v >> 24), v & 0xFFFFFF
}

// count reads an entry count and checks that the entries (each of size
// bytes) fit in what is left.
func (r *reader) count(size int) int {
	n := r.u32()
	if r.err == nil && uint64(n)*uint64(size) > uint64(len(r.b)) {
		r.err = mp4err("box %q: %d entries of %d bytes in %d bytes", r.box, n, size, len(r.b))
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// ParseMP4 reads the tracks and sample tables of an MP4 file.
func ParseMP4(b []byte) (*File, error) {
	top, err := boxes(b, 0)
	if err != nil {
		return nil, err
	}
	moov := child(top, "moov")
	if moov == nil {
		return nil, mp4err("no moov box")
	}
	mb, err := boxes(moov.payload, 0)
	if err != nil {
		return nil, err
	}
	f := &File{}
	byID := map[uint32]*Track{}
	for _, tb := range mb {
		if tb.typ != "trak" {
			continue
		}
		t, err := parseTrak(tb.payload, int64(len(b)))
		if err != nil {
			return nil, err
		}
		if byID[t.ID] != nil {
			return nil, mp4err("two tracks with id %d", t.ID)
		}
		byID[t.ID] = t
		f.Tracks = append(f.Tracks, t)
	}
	if len(f.Tracks) == 0 {
		return nil, mp4err("no track")
	}
	trex := map[uint32][3]uint32{} // default duration, size, flags
	if mvex := child(mb, "mvex"); mvex != nil {
		xb, err := boxes(mvex.payload, 0)
		if err != nil {
			return nil, err
		}
		for _, x := range xb {
			if x.typ != "trex" {
				continue
			}
			r := &reader{b: x.payload, box: "trex"}
			r.full()
			id := r.u32()
			r.u32() // default_sample_description_index
			d, s, fl := r.u32(), r.u32(), r.u32()
			if r.err != nil {
				return nil, r.err
			}
			trex[id] = [3]uint32{d, s, fl}
		}
	}
	total := 0
	for _, t := range f.Tracks {
		total += len(t.Samples)
	}
	for _, mf := range top {
		if mf.typ != "moof" {
			continue
		}
		f.Fragmented = true
		if err := parseMoof(mf, byID, trex, &total, int64(len(b))); err != nil {
			return nil, err
		}
	}
	for _, t := range f.Tracks {
		for _, s := range t.Samples {
			if s.Offset < 0 || s.Offset+int64(s.Size) > int64(len(b)) {
				return nil, mp4err("track %d: sample at %d+%d outside the %d bytes of the file", t.ID, s.Offset, s.Size, len(b))
			}
		}
	}
	return f, nil
}

func parseTrak(p []byte, fileLen int64) (*Track, error) {
	tb, err := boxes(p, 0)
	if err != nil {
		return nil, err
	}
	t := &Track{}
	tkhd := child(tb, "tkhd")
	mdia := child(tb, "mdia")
	if tkhd == nil || mdia == nil {
		return nil, mp4err("trak without tkhd or mdia")
	}
	r := &reader{b: tkhd.payload, box: "tkhd"}
	if v, _ := r.full(); v == 1 {
		r.need(16)
	} else {
		r.need(8)
	}
	t.ID = r.u32()
	if r.err != nil {
		return nil, r.err
	}
	md, err := boxes(mdia.payload, 0)
	if err != nil {
		return nil, err
	}
	mdhd, hdlr, minf := child(md, "mdhd"), child(md, "hdlr"), child(md, "minf")
	if mdhd == nil || hdlr == nil || minf == nil {
		return nil, mp4err("track %d: mdia without mdhd, hdlr or minf", t.ID)
	}
	r = &reader{b: mdhd.payload, box: "mdhd"}
	if v, _ := r.full(); v == 1 {
		r.need(16)
	} else {
		r.need(8)
	}
	t.TimeScale = r.u32()
	r = &reader{b: hdlr.payload, box: "hdlr"}
	r.full()
	r.u32()
	t.Handler = string(r.need(4))
	if r.err != nil {
		return nil, r.err
	}
	if t.TimeScale == 0 {
		return nil, mp4err("track %d: time scale 0", t.ID)
	}
	mi, err := boxes(minf.payload, 0)
	if err != nil {
		return nil, err
	}
	stbl := child(mi, "stbl")
	if stbl == nil {
		return nil, mp4err("track %d: no stbl", t.ID)
	}
	if err := parseStbl(t, stbl.payload, fileLen); err != nil {
		return nil, fmt.Errorf("track %d: %w", t.ID, err)
	}
	return t, nil
}

func parseStbl(t *Track, p []byte, fileLen int64) error {
	sb, err := boxes(p, 0)
	if err != nil {
		return err
	}
	stsd := child(sb, "stsd")
	if stsd == nil {
		return mp4err("no stsd")
	}
	r := &reader{b: stsd.payload, box: "stsd"}
	r.full()
	if r.count(8) < 1 {
		if r.err != nil {
			return r.err
		}
		return mp4err("stsd without a sample entry")
	}
	entries, err := boxes(r.b, 0)
	if err != nil {
		return err
	}
	se := entries[0]
	t.Codec = se.typ
	if se.typ == "avc1" || se.typ == "avc3" {
		// VisualSampleEntry: 78 bytes before its child boxes.
		if len(se.payload) < 78 {
			return mp4err("%s sample entry truncated", se.typ)
		}
		cb, err := boxes(se.payload[78:], 0)
		if err != nil {
			return err
		}
		avcC := child(cb, "avcC")
		if avcC == nil || len(avcC.payload) < 5 {
			return mp4err("%s without a valid avcC", se.typ)
		}
		t.NALULength = int(avcC.payload[4]&3) + 1
	}

	// Sample sizes first: their count bounds every other table.
	var sizes []uint32
	if stsz := child(sb, "stsz"); stsz != nil {
		r := &reader{b: stsz.payload, box: "stsz"}
		r.full()
		fixed := r.u32()
		n := r.u32()
		if r.err != nil {
			return r.err
		}
		if n > maxSamples {
			return mp4err("stsz: %d samples", n)
		}
		if fixed == 0 && uint64(n)*4 > uint64(len(r.b)) {
			return mp4err("stsz: %d sizes in %d bytes", n, len(r.b))
		}
		if uint64(fixed)*uint64(n) > uint64(fileLen) {
			return mp4err("stsz: %d samples of %d bytes in a file of %d", n, fixed, fileLen)
		}
		sizes = make([]uint32, n)
		for i := range sizes {
			if fixed != 0 {
				sizes[i] = fixed
			} else {
				sizes[i] = r.u32()
			}
		}
	}
	n := len(sizes)
	if n == 0 {
		return nil // a fragmented file's moov: samples are in moofs
	}
	t.Samples = make([]Sample, n)
	for i := range t.Samples {
		t.Samples[i].Size = sizes[i]
		t.Samples[i].Sync = true
	}

	// stts: decode times.
	stts := child(sb, "stts")
	if stts == nil {
		return mp4err("no stts")
	}
	r = &reader{b: stts.payload, box: "stts"}
	r.full()
	k := 0
	var dts int64
	for e, c := 0, r.count(8); e < c; e++ {
		cnt, d := r.u32(), r.u32()
		for j := uint32(0); j < cnt; j++ {
			if k >= n {
				return mp4err("stts: more samples than stsz's %d", n)
			}
			t.Samples[k].DTS, t.Samples[k].Duration = dts, d
			dts += int64(d)
			k++
		}
	}
	if r.err != nil {
		return r.err
	}
	if k != n {
		return mp4err("stts: %d samples, stsz %d", k, n)
	}
	if ctts := child(sb, "ctts"); ctts != nil {
		r := &reader{b: ctts.payload, box: "ctts"}
		r.full()
		k := 0
		for e, c := 0, r.count(8); e < c; e++ {
			cnt, off := r.u32(), int32(r.u32())
			for j := uint32(0); j < cnt; j++ {
				if k >= n {
					return mp4err("ctts: more samples than stsz's %d", n)
				}
				t.Samples[k].PTSOffset = off
				k++
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	if stss := child(sb, "stss"); stss != nil {
		for i := range t.Samples {
			t.Samples[i].Sync = false
		}
		r := &reader{b: stss.payload, box: "stss"}
		r.full()
		for e, c := 0, r.count(4); e < c; e++ {
			s := r.u32()
			if s == 0 || int(s) > n {
				return mp4err("stss: sample %d of %d", s, n)
			}
			t.Samples[s-1].Sync = true
		}
	}

	// Chunk offsets and the samples of each chunk.
	var chunks []int64
	if stco := child(sb, "stco"); stco != nil {
		r := &reader{b: stco.payload, box: "stco"}
		r.full()
		for e, c := 0, r.count(4); e < c; e++ {
			chunks = append(chunks, int64(r.u32()))
		}
		if r.err != nil {
			return r.err
		}
	} else if co64 := child(sb, "co64"); co64 != nil {
		r := &reader{b: co64.payload, box: "co64"}
		r.full()
		for e, c := 0, r.count(8); e < c; e++ {
			v := r.u64()
			if v > 1<<62 {
				return mp4err("co64: offset %d", v)
			}
			chunks = append(chunks, int64(v))
		}
		if r.err != nil {
			return r.err
		}
	} else {
		return mp4err("no stco or co64")
	}
	stsc := child(sb, "stsc")
	if stsc == nil {
		return mp4err("no stsc")
	}
	r = &reader{b: stsc.payload, box: "stsc"}
	r.full()
	type run struct{ first, per uint32 }
	var runs []run
	for e, c := 0, r.count(12); e < c; e++ {
		first, per := r.u32(), r.u32()
		r.u32() // sample_description_index
		if first == 0 || len(runs) > 0 && first <= runs[len(runs)-1].first {
			return mp4err("stsc: chunk runs out of order")
		}
		runs = append(runs, run{first, per})
	}
	if r.err != nil {
		return r.err
	}
	k = 0
	for ri, ru := range runs {
		last := uint32(len(chunks))
		if ri+1 < len(runs) {
			last = runs[ri+1].first - 1
		}
		if last > uint32(len(chunks)) {
			return mp4err("stsc: chunk %d of %d", last, len(chunks))
		}
		for ch := ru.first; ch <= last; ch++ {
			off := chunks[ch-1]
			for j := uint32(0); j < ru.per; j++ {
				if k >= n {
					return mp4err("stsc: more samples than stsz's %d", n)
				}
				t.Samples[k].Offset = off
				off += int64(t.Samples[k].Size)
				k++
			}
		}
	}
	if k != n {
		return mp4err("stsc: %d samples in chunks, stsz %d", k, n)
	}
	return nil
}

// tfhd and trun flags.
const (
	tfBaseOffset   = 0x1
	tfDescIndex    = 0x2
	tfDefDuration  = 0x8
	tfDefSize      = 0x10
	tfDefFlags     = 0x20
	trDataOffset   = 0x1
	trFirstFlags   = 0x4
	trDuration     = 0x100
	trSize         = 0x200
	trFlags        = 0x400
	trCTO          = 0x800
	sampleNonSync  = 0x10000
	maxTrunEntries = 1 << 20
)

func parseMoof(mf box, byID map[uint32]*Track, trex map[uint32][3]uint32, total *int, fileLen int64) error {
	fb, err := boxes(mf.payload, 0)
	if err != nil {
		return err
	}
	for _, tf := range fb {
		if tf.typ != "traf" {
			continue
		}
		tb, err := boxes(tf.payload, 0)
		if err != nil {
			return err
		}
		tfhd := child(tb, "tfhd")
		if tfhd == nil {
			return mp4err("traf without tfhd")
		}
		r := &reader{b: tfhd.payload, box: "tfhd"}
		_, flags := r.full()
		id := r.u32()
		t := byID[id]
		if r.err == nil && t == nil {
			return mp4err("traf of unknown track %d", id)
		}
		def := trex[id]
		base := mf.start
		if flags&tfBaseOffset != 0 {
			v := r.u64()
			if v > 1<<62 {
				return mp4err("tfhd: base offset %d", v)
			}
			base = int64(v)
		}
		if flags&tfDescIndex != 0 {
			r.u32()
		}
		if flags&tfDefDuration != 0 {
			def[0] = r.u32()
		}
		if flags&tfDefSize != 0 {
			def[1] = r.u32()
		}
		if flags&tfDefFlags != 0 {
			def[2] = r.u32()
		}
		if r.err != nil {
			return r.err
		}
		var dts int64
		if n := len(t.Samples); n > 0 {
			dts = t.Samples[n-1].DTS + int64(t.Samples[n-1].Duration)
		}
		if tfdt := child(tb, "tfdt"); tfdt != nil {
			r := &reader{b: tfdt.payload, box: "tfdt"}
			if v, _ := r.full(); v == 1 {
				u := r.u64()
				if u > 1<<62 {
					return mp4err("tfdt: %d", u)
				}
				dts = int64(u)
			} else {
				dts = int64(r.u32())
			}
			if r.err != nil {
				return r.err
			}
		}
		for _, tr := range tb {
			if tr.typ != "trun" {
				continue
			}
			r := &reader{b: tr.payload, box: "trun"}
			_, fl := r.full()
			n := r.u32()
			if n > maxTrunEntries {
				return mp4err("trun: %d samples", n)
			}
			off := base
			if fl&trDataOffset != 0 {
				off = base + int64(int32(r.u32()))
			}
			first := def[2]
			if fl&trFirstFlags != 0 {
				first = r.u32()
			}
			if r.err != nil {
				return r.err
			}
			if *total+int(n) > maxSamples {
				return mp4err("more than %d samples", maxSamples)
			}
			// Every sample has bytes: in the trun's entries or, by default
			// size, in the file.
			per := 0
			for _, b := range []uint32{trDuration, trSize, trFlags, trCTO} {
				if fl&b != 0 {
					per += 4
				}
			}
			if uint64(n)*uint64(per) > uint64(len(r.b)) {
				return mp4err("trun: %d entries of %d bytes in %d bytes", n, per, len(r.b))
			}
			if fl&trSize == 0 && uint64(n)*uint64(max(def[1], 1)) > uint64(fileLen) {
				return mp4err("trun: %d samples of %d bytes in a file of %d", n, def[1], fileLen)
			}
			for i := uint32(0); i < n; i++ {
				s := Sample{DTS: dts, Duration: def[0], Size: def[1], Offset: off}
				sf := def[2]
				if i == 0 {
					sf = first
				}
				if fl&trDuration != 0 {
					s.Duration = r.u32()
				}
				if fl&trSize != 0 {
					s.Size = r.u32()
				}
				if fl&trFlags != 0 {
					v := r.u32()
					if !(i == 0 && fl&trFirstFlags != 0) {
						sf = v
					}
				}
				if fl&trCTO != 0 {
					s.PTSOffset = int32(r.u32())
				}
				if r.err != nil {
					return r.err
				}
				s.Sync = sf&sampleNonSync == 0
				t.Samples = append(t.Samples, s)
				dts += int64(s.Duration)
				off += int64(s.Size)
				*total++
			}
			base = off
		}
	}
	return nil
}
