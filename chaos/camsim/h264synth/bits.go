package h264synth

// bitWriter writes an RBSP most significant bit first.
type bitWriter struct {
	buf  []byte
	cur  byte
	nbit uint // bits used in cur
}

func (w *bitWriter) u(n uint, v uint64) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bit(uint8(v>>uint(i)) & 1)
	}
}

func (w *bitWriter) bit(b uint8) {
	w.cur = w.cur<<1 | b
	w.nbit++
	if w.nbit == 8 {
		w.buf = append(w.buf, w.cur)
		w.cur, w.nbit = 0, 0
	}
}

func (w *bitWriter) flag(b bool) {
	if b {
		w.bit(1)
	} else {
		w.bit(0)
	}
}

// ue writes an unsigned Exp-Golomb code.
func (w *bitWriter) ue(v uint64) {
	v++
	n := uint(0)
	for x := v; x > 1; x >>= 1 {
		n++
	}
	w.u(n, 0)
	w.u(n+1, v)
}

// se writes a signed Exp-Golomb code.
func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

// alignZero pads with zero bits to the next byte boundary.
func (w *bitWriter) alignZero() {
	for w.nbit != 0 {
		w.bit(0)
	}
}

// bytes appends whole bytes; the writer must be byte-aligned.
func (w *bitWriter) bytes(b []byte) {
	if w.nbit != 0 {
		panic("h264synth: unaligned byte write")
	}
	w.buf = append(w.buf, b...)
}

// trailing writes rbsp_trailing_bits and returns the RBSP.
func (w *bitWriter) trailing() []byte {
	w.bit(1)
	w.alignZero()
	return w.buf
}

// EmulationPrevent returns the NAL unit payload rbsp with emulation-prevention
// bytes (0x03) inserted wherever two zero bytes are followed by a byte <= 3,
// and after a trailing pair of zero bytes (H.264 7.4.1). It appends to dst
// and returns the extended slice.
func EmulationPrevent(dst, rbsp []byte) []byte {
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if zeros >= 2 {
		dst = append(dst, 3)
	}
	return dst
}

// EmulationRemove is the inverse of EmulationPrevent: it drops every 0x03
// that follows two zero bytes.
func EmulationRemove(nalu []byte) []byte {
	out := make([]byte, 0, len(nalu))
	zeros := 0
	for _, b := range nalu {
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}
