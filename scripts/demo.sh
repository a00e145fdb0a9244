#!/usr/bin/env bash
# make demo: one Understudy node records simulated cameras, driven over its
# API with `understudy ctl` as a VMS would; then what it wrote, checked by
# ffprobe and fsck. (The cluster comes with a later issue: one node today.)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/understudy
data=${DEMO_DATA:-./demo-data}
cams=${DEMO_CAMERAS:-4}
secs=${DEMO_SECONDS:-20}
rtsp_port=${DEMO_RTSP_PORT:-18554}
api=${DEMO_API:-127.0.0.1:17480}

rm -rf "$data"
mkdir -p "$data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

export UNDERSTUDY_ADMIN_TOKEN=demo-admin-token   # serve reads it; ctl uses UNDERSTUDY_TOKEN
export UNDERSTUDY_SERVER=http://$api UNDERSTUDY_TOKEN=$UNDERSTUDY_ADMIN_TOKEN
ctl() { $bin ctl "$@"; }

echo "== $cams simulated cameras (H.264 1280x720, 25 fps, GOP 50, 2 Mbit/s, AAC) on rtsp://127.0.0.1:$rtsp_port/cam/N"
$bin camsim --listen "127.0.0.1:$rtsp_port" --cameras "$cams" --bitrate 2M --fps 25 --gop 50 --audio >"$data/camsim.log" 2>&1 &
pids+=($!)

echo "== understudy serve --id demo-1 --domain zone=a/rack=r1/host=h1 --listen $api --data-dir $data/node"
$bin serve --id demo-1 --domain zone=a/rack=r1/host=h1 --listen "$api" --data-dir "$data/node" \
  --segment-duration 10s >"$data/serve.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
for _ in $(seq 50); do ctl nodes >/dev/null 2>&1 && break; sleep 0.2; done

echo
for ((i = 0; i < cams; i++)); do
  ctl streams add --id "cam$i" --url "rtsp://127.0.0.1:$rtsp_port/cam/$i" --label site=demo >/dev/null
done
echo "== understudy ctl streams list"
ctl streams list
start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo
echo "== recording for ${secs}s ..."
sleep "$secs"

echo
echo "== understudy ctl nodes"
ctl nodes
echo
echo "== understudy ctl placement"
ctl placement
for ((i = 0; i < cams; i++)); do
  echo
  echo "== understudy ctl timeline --stream cam$i --from $start --to now"
  ctl timeline --stream "cam$i" --from "$start" --to now
done

echo
echo "== understudy ctl export --stream cam0 --from now-15s --to now-3s -o $data/clip.mp4"
ctl export --stream cam0 --from now-15s --to now-3s -o "$data/clip.mp4"
if command -v ffprobe >/dev/null 2>&1; then
  ffprobe -v error -show_entries format=duration:stream=codec_name,width,height -of compact "$data/clip.mp4"
fi

echo
echo "== stopping the node (SIGTERM: sessions close their segments)"
kill -TERM "$serve_pid"
wait "$serve_pid" || true

echo
echo "== understudy segments --data-dir $data/node --stream cam0"
$bin segments --data-dir "$data/node" --stream cam0
if command -v ffprobe >/dev/null 2>&1; then
  echo
  echo "== every segment file checked by ffprobe (an independent decoder)"
  bad=0 n=0
  while IFS= read -r f; do
    n=$((n + 1))
    if [ -n "$(ffprobe -v error -i "$f" 2>&1)" ]; then bad=$((bad + 1)); echo "ffprobe complains about $f"; fi
  done < <(find "$data/node/segments" -name '*.mp4')
  echo "$n segment files, $bad with ffprobe errors"
fi
echo
echo "== understudy fsck --data-dir $data/node"
$bin fsck --data-dir "$data/node"
