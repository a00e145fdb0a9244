package h264synth

// NAL unit types written by the synthesiser.
const (
	naluSlice  = 1
	naluIDR    = 5
	naluSEI    = 6
	naluSPS    = 7
	naluPPS    = 8
	naluFiller = 12
)

// nalHeader is forbidden_zero_bit, nal_ref_idc and nal_unit_type.
func nalHeader(refIdc, typ byte) byte { return refIdc<<5 | typ }

// level is one row of H.264 Table A-1 (Baseline bit rates: cpbBrNalFactor 1200).
type level struct {
	idc     uint8
	maxMBPS int // macroblocks per second
	maxFS   int // macroblocks per frame
	maxBR   int // in 1200 bit/s
}

var levels = []level{
	{10, 1485, 99, 64}, {11, 3000, 396, 192}, {12, 6000, 396, 384},
	{13, 11880, 396, 768}, {20, 11880, 396, 2000}, {21, 19800, 792, 4000},
	{22, 20250, 1620, 4000}, {30, 40500, 1620, 10000}, {31, 108000, 3600, 14000},
	{32, 216000, 5120, 20000}, {40, 245760, 8192, 20000}, {41, 245760, 8192, 50000},
	{42, 522240, 8704, 50000}, {50, 589824, 22080, 135000}, {51, 983040, 36864, 240000},
	{52, 2073600, 36864, 240000},
}

// levelFor returns the lowest level_idc whose limits hold the stream, or 52.
func levelFor(mbs, fps, bitrate int) uint8 {
	for _, l := range levels {
		if mbs <= l.maxFS && mbs*fps <= l.maxMBPS && bitrate <= l.maxBR*1200 {
			return l.idc
		}
	}
	return 52
}

// sps writes a Constrained Baseline sequence parameter set (7.3.2.1.1) with
// frame cropping for sizes that are not multiples of 16 and VUI timing so
// players read the frame rate from an elementary stream.
func (g *geometry) sps(fps, bitrate int) []byte {
	var w bitWriter
	w.u(8, 66)   // profile_idc: Baseline
	w.u(8, 0xC0) // constraint_set0_flag, constraint_set1_flag: Constrained Baseline
	w.u(8, uint64(levelFor(g.mbs, fps, bitrate)))
	w.ue(0) // seq_parameter_set_id
	w.ue(uint64(g.log2MaxFrameNum - 4))
	w.ue(2)       // pic_order_cnt_type: POC from frame_num, no B frames
	w.ue(1)       // max_num_ref_frames
	w.flag(false) // gaps_in_frame_num_value_allowed_flag
	w.ue(uint64(g.mbW - 1))
	w.ue(uint64(g.mbH - 1))
	w.flag(true) // frame_mbs_only_flag
	w.flag(true) // direct_8x8_inference_flag
	cropRight, cropBottom := g.mbW*16-g.width, g.mbH*16-g.height
	if cropRight != 0 || cropBottom != 0 {
		w.flag(true) // frame_cropping_flag; CropUnitX = CropUnitY = 2 for 4:2:0 frames
		w.ue(0)
		w.ue(uint64(cropRight / 2))
		w.ue(0)
		w.ue(uint64(cropBottom / 2))
	} else {
		w.flag(false)
	}
	w.flag(true) // vui_parameters_present_flag
	// vui_parameters (E.1.1)
	w.flag(false) // aspect_ratio_info_present_flag
	w.flag(false) // overscan_info_present_flag
	w.flag(false) // video_signal_type_present_flag
	w.flag(false) // chroma_loc_info_present_flag
	w.flag(true)  // timing_info_present_flag
	w.u(32, 1)    // num_units_in_tick
	w.u(32, uint64(2*fps))
	w.flag(true)  // fixed_frame_rate_flag
	w.flag(false) // nal_hrd_parameters_present_flag
	w.flag(false) // vcl_hrd_parameters_present_flag
	w.flag(false) // pic_struct_present_flag
	w.flag(true)  // bitstream_restriction_flag
	w.flag(true)  // motion_vectors_over_pic_boundaries_flag
	w.ue(0)       // max_bytes_per_pic_denom
	w.ue(0)       // max_bits_per_mb_denom
	w.ue(16)      // log2_max_mv_length_horizontal
	w.ue(16)      // log2_max_mv_length_vertical
	w.ue(0)       // max_num_reorder_frames: decoders output each frame at once
	w.ue(1)       // max_dec_frame_buffering
	return nalu(nalHeader(3, naluSPS), w.trailing())
}

// pps writes a picture parameter set (7.3.2.2): CAVLC, one slice group, QP 26.
func pps() []byte {
	var w bitWriter
	w.ue(0)       // pic_parameter_set_id
	w.ue(0)       // seq_parameter_set_id
	w.flag(false) // entropy_coding_mode_flag: CAVLC
	w.flag(false) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)       // num_slice_groups_minus1
	w.ue(0)       // num_ref_idx_l0_default_active_minus1
	w.ue(0)       // num_ref_idx_l1_default_active_minus1
	w.flag(false) // weighted_pred_flag
	w.u(2, 0)     // weighted_bipred_idc
	w.se(0)       // pic_init_qp_minus26
	w.se(0)       // pic_init_qs_minus26
	w.se(0)       // chroma_qp_index_offset
	w.flag(false) // deblocking_filter_control_present_flag
	w.flag(false) // constrained_intra_pred_flag
	w.flag(false) // redundant_pic_cnt_present_flag
	return nalu(nalHeader(3, naluPPS), w.trailing())
}

// idr writes an IDR picture of Intra_16x16 DC macroblocks without residual.
// With no coded coefficients anywhere, every neighbour count nN is 0, so each
// macroblock is mb_type 3 (I_16x16_2_0_0, "00100"), intra_chroma_pred_mode 0
// ("1"), mb_qp_delta 0 ("1") and an Intra16x16DCLevel coeff_token for
// TotalCoeff 0 with nC 0 ("1"): 8 bits. DC prediction without neighbours is
// 128, so the picture is flat grey.
func (g *geometry) idr(idrPicID uint32) []byte {
	var w bitWriter
	w.ue(0)                         // first_mb_in_slice
	w.ue(7)                         // slice_type: I, all slices of the picture
	w.ue(0)                         // pic_parameter_set_id
	w.u(uint(g.log2MaxFrameNum), 0) // frame_num
	w.ue(uint64(idrPicID))          // idr_pic_id
	w.flag(false)                   // no_output_of_prior_pics_flag
	w.flag(false)                   // long_term_reference_flag
	w.se(0)                         // slice_qp_delta
	for i := 0; i < g.mbs; i++ {
		w.u(8, 0b00100_1_1_1)
	}
	return nalu(nalHeader(3, naluIDR), w.trailing())
}

// pcmLuma values painted by P pictures.
const (
	lumaGrey  = 128
	lumaWhite = 235
)

// pcmMB is one macroblock painted with I_PCM samples.
type pcmMB struct {
	addr int
	luma byte
}

// pSlice writes a P picture that skips every macroblock but the given
// I_PCM ones (sorted by address, distinct). Skipped macroblocks have motion
// vector 0 (every inter macroblock is skipped and intra neighbours are not
// inter predictors), so they copy the reference exactly.
func (g *geometry) pSlice(frameNum uint32, mbs []pcmMB) []byte {
	var w bitWriter
	w.ue(0)                                        // first_mb_in_slice
	w.ue(5)                                        // slice_type: P, all slices of the picture
	w.ue(0)                                        // pic_parameter_set_id
	w.u(uint(g.log2MaxFrameNum), uint64(frameNum)) // frame_num
	w.flag(false)                                  // num_ref_idx_active_override_flag
	w.flag(false)                                  // ref_pic_list_modification_flag_l0
	w.flag(false)                                  // adaptive_ref_pic_marking_mode_flag
	w.se(0)                                        // slice_qp_delta
	next := 0
	for _, mb := range mbs {
		w.ue(uint64(mb.addr - next)) // mb_skip_run
		w.ue(5 + 25)                 // mb_type: I_PCM in a P slice
		w.alignZero()                // pcm_alignment_zero_bit
		w.bytes(g.pcmSamples(mb.luma))
		next = mb.addr + 1
	}
	if next < g.mbs {
		// A final run only when macroblocks remain: a run of 0 here would
		// announce one more macroblock.
		w.ue(uint64(g.mbs - next))
	}
	return nalu(nalHeader(2, naluSlice), w.trailing())
}

// pcmSamples returns 256 luma samples of the given value and 128 neutral
// chroma samples; no sample is 0, which older decoders reject in I_PCM.
func (g *geometry) pcmSamples(luma byte) []byte {
	if luma == lumaWhite {
		return g.pcmWhite
	}
	return g.pcmGrey
}

func makePCM(luma byte) []byte {
	b := make([]byte, 384)
	for i := range b {
		if i < 256 {
			b[i] = luma
		} else {
			b[i] = 128
		}
	}
	return b
}

// nalu returns the NAL unit made of header and the escaped rbsp.
func nalu(header byte, rbsp []byte) []byte {
	return EmulationPrevent([]byte{header}, rbsp)
}
