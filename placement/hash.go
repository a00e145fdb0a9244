package placement

import "math/bits"

// Scores are integers, so that every architecture ranks nodes identically.
//
// The weighted rendezvous score of node n for stream s is −ln(u)/w, where u
// is a uniform hash of (s, n) in (0, 1] and w the node weight: the node with
// the smallest score wins, and a node wins a share of streams proportional to
// its weight. Here −log₂(u) is computed in Q32 fixed point from a table of
// log₂(1+i/4096) (built with integer arithmetic only) with linear
// interpolation, and the division by w is a multiplication by a precomputed
// integer reciprocal.

const (
	logTableBits = 12
	logTableSize = 1 << logTableBits
)

// log2Table[i] = log₂(1 + i/4096) in Q32, i = 0..4096.
var log2Table = buildLog2Table()

// buildLog2Table computes the fractional binary logarithm by repeated
// squaring in Q62 fixed point: exact integer arithmetic, no float.
func buildLog2Table() *[logTableSize + 1]uint64 {
	var t [logTableSize + 1]uint64
	for i := 0; i <= logTableSize; i++ {
		if i == logTableSize {
			t[i] = 1 << 32
			break
		}
		x := uint64(logTableSize+i) << (62 - logTableBits) // in [1, 2) as Q62
		var r uint64
		for b := 31; b >= 0; b-- {
			hi, lo := bits.Mul64(x, x)
			x = hi<<2 | lo>>62 // x² in Q62, in [1, 4)
			if x >= 2<<62 {
				x >>= 1
				r |= 1 << uint(b)
			}
		}
		t[i] = r
	}
	return &t
}

// negLog2 returns −log₂(h/2⁶⁴) in Q32, for h > 0 (at most 64<<32).
func negLog2(h uint64) uint64 {
	lz := uint(bits.LeadingZeros64(h))
	m := h << lz // top bit set
	i := (m >> (63 - logTableBits)) & (logTableSize - 1)
	r := (m >> (63 - logTableBits - 20)) & (1<<20 - 1) // next 20 bits
	a, b := log2Table[i], log2Table[i+1]
	frac := a + ((b-a)*r)>>20
	// log₂(h) = 63 − lz + frac; −log₂(h/2⁶⁴) = 64 − log₂(h) = 1 + lz − frac.
	return (uint64(1+lz) << 32) - frac
}

// reciprocal returns ⌊(2⁶³−1)/w⌋, the multiplier that divides by w.
func reciprocal(w int64) uint64 {
	return (1<<63 - 1) / uint64(w)
}

// score is the weighted rendezvous score (smaller wins) of a pair hash h for
// a node of reciprocal weight inv. It is at most 2⁶¹.
func score(h, inv uint64) uint64 {
	if h == 0 {
		h = 1
	}
	hi, lo := bits.Mul64(negLog2(h), inv)
	return hi<<24 | lo>>40
}

// hashString is FNV-1a 64 followed by a finalizer.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// pairHash is the hash of (stream, node) from their own hashes, both
// already well mixed: two multiplications, whose high bits (the ones that
// rank) depend on every input bit. It is the inner loop of Place.
func pairHash(sh, nh uint64) uint64 {
	x := (sh ^ nh) * 0x9e3779b97f4a7c15
	x ^= x >> 32
	return x*0xd6e8feb86659fd93 | 1 // never 0: a valid u in (0, 1]
}
