// Package check is the frame checker of the chaos suite: it decides from
// the video itself, not from the recorder's bookkeeping, whether frames
// were lost.
//
// ExtractFrames parses an MP4 with a reader of its own (progressive, as
// GET /v1/export and `understudy export` write, or fragmented, as segments
// are stored) and reads the camsim stamp (h264synth.Stamp: camera, frame
// number, camera time, in an SEI user_data_unregistered message) of every
// H.264 sample. Check compares those frames with the camera's send log
// (camsim.ReadSendLog) over a window [From, To) and counts, for every
// frame number the camera generated in it:
//
//   - present: in the recording (duplicates: extra copies);
//   - camera skip: missing, and the camera says it skipped it (fell
//     behind on a starved machine, paused);
//   - no recorder: missing, inside a window the caller says no recorder
//     of the stream was alive (Options.Down);
//   - in flight: missing, just before a recorder was killed or frozen
//     (Options.InFlight): the store promises to lose at most the part it
//     was writing, a frozen recorder what it had not read yet; to be
//     given only where no other recorder had the stream;
//   - starting: missing, after a recorder came back (the end of a Down
//     window, Options.Starts) and before the first IDR frame the camera
//     sent once a reader had connected, at most Options.StartGrace: a
//     recorder cannot begin before a keyframe;
//   - lost: missing otherwise, whether the camera sent it or had no
//     reader to send it to (a live recorder should have been one).
//
// It also counts frames out of order, samples whose decode time does not
// grow, frames the camera never sent (phantoms: video that never existed),
// unknown frame numbers, frames of another camera, samples without a stamp,
// and frames whose time in the file (from the first frame) is more than
// Options.MaxSkew from their camera time (the file's timeline stretched or
// shrunk). A report passes when all of these and the losses are 0.
// WriteTable prints reports as a table.
//
// testdata/record.mp4 is a real export of a simulated camera recorded by
// `understudy record` (go test ./chaos/check -run TestUpdateTestdata
// -update records it afresh); the tests cut, repeat and swap its samples
// and expect exactly those faults.
package check
