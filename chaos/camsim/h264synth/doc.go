// Package h264synth synthesises a decodable H.264 elementary stream without
// an encoder, for simulated cameras.
//
// The stream is Constrained Baseline, CAVLC, one slice per picture:
//
//   - SPS/PPS are written from the configured size (any even width and
//     height; sizes that are not multiples of 16 are cropped).
//   - An IDR picture is made of Intra_16x16 DC-predicted macroblocks with no
//     residual: 8 bits per macroblock, a flat grey picture.
//   - A P picture skips every macroblock except two I_PCM macroblocks: a
//     white block that moves one macroblock per frame and the grey block that
//     erases its previous position. So every frame differs from the previous
//     one, and P pictures stay small (about 800 bytes).
//   - Every access unit carries an SEI user_data_unregistered message with a
//     Stamp (camera number, frame sequence number, wall-clock time), so a
//     consumer can tell exactly which frames it received.
//   - Filler-data NAL units (type 12) bring every access unit to the
//     bitrate target. A leaky bucket spreads the budget per frame, so the
//     bitrate over any window longer than a frame is within a frame's size of
//     the target.
//
// Emulation-prevention bytes are inserted by EmulationPrevent. NAL units are
// returned without start codes; AnnexB joins an access unit with them.
package h264synth
