package camsim

// Silent AAC-LC raw_data_block()s: one element (SCE for mono, CPE without
// common window for stereo) whose channel streams have max_sfb 0, so no
// spectral data, then ID_END. They decode to silence at any sample rate.
var (
	aacSilentMono   = []byte{0x01, 0x40, 0x20, 0x07}
	aacSilentStereo = []byte{0x20, 0xa0, 0x10, 0x02, 0x80, 0x40, 0x0e}
)

// aacSamplesPerFrame is the number of PCM samples of one AAC-LC frame.
const aacSamplesPerFrame = 1024

func aacSilentFrame(channels int) []byte {
	if channels == 2 {
		return aacSilentStereo
	}
	return aacSilentMono
}
