// Package camsim simulates RTSP cameras for tests and demos.
//
// A Server serves any number of cameras at rtsp://HOST:PORT/cam/N (N from
// 0) with gortsplib. Each camera sends synthetic H.264 (package h264synth:
// decodable without an encoder, at the configured resolution, frame rate,
// GOP length and bitrate) and optionally silent AAC-LC audio. RTCP sender
// reports carry the camera's wall clock in the standard NTP format of RFC
// 3550, every SenderReportPeriod and right after a reader starts playing.
//
// Tests drive failures per camera: Stop (the stream ends, sessions close,
// DESCRIBE answers 404), Pause (sessions stay, no packets), and
// SetUnreachable (requests for the camera get no answer: the connection is
// closed; existing sessions are closed), and SetClockSkew (the camera's wall
// clock steps).
//
// Every access unit carries an h264synth.Stamp (camera, frame number,
// wall-clock time), so a consumer can check which frames it recorded.
//
// With Config.SendLogDir (camsim -send-log DIR) each camera also keeps a
// send log, DIR/cam-N.sendlog: JSON lines saying, for every frame number
// it generated, whether it was sent to the playing sessions (with the
// stream's IDR frames) or skipped and why (fell behind on a starved
// machine, paused, no reader), plus start, stop and reader-count events.
// A frame checker (package chaos/check) reads it with ReadSendLog to tell
// a camera's skip from a recorder's loss. Frame numbers continue from the
// log, so they stay unique when a camera process restarts.
package camsim
