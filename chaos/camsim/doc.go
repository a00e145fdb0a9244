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
package camsim
