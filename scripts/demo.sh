#!/usr/bin/env bash
# make demo: simulated cameras recorded on one node, then what was written.
# Until the cluster exists the node is `understudy record`, one per camera.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/understudy
data=${DEMO_DATA:-./demo-data}
cams=${DEMO_CAMERAS:-4}
secs=${DEMO_SECONDS:-20}
port=${DEMO_PORT:-18554}

rm -rf "$data"
mkdir -p "$data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== starting $cams simulated cameras (H.264 640x360, 25 fps, 2 Mbit/s, AAC) on rtsp://127.0.0.1:$port/cam/N"
$bin camsim --listen "127.0.0.1:$port" --cameras "$cams" --bitrate 2M --fps 25 --gop 50 --audio >"$data/camsim.log" 2>&1 &
pids+=($!)
sleep 1

echo "== recording every camera for ${secs}s into $data (segments of 10s)"
rec=()
for ((i = 0; i < cams; i++)); do
  $bin record --url "rtsp://127.0.0.1:$port/cam/$i" --stream "cam$i" --data-dir "$data" \
    --duration "${secs}s" --segment-duration 10s --quiet >"$data/record-cam$i.log" 2>&1 &
  rec+=($!)
done
for p in "${rec[@]}"; do wait "$p"; done
tail -n 1 "$data"/record-cam*.log

for ((i = 0; i < cams; i++)); do
  echo
  echo "== understudy segments --data-dir $data --stream cam$i"
  $bin segments --data-dir "$data" --stream "cam$i"
done

first=$($bin segments --data-dir "$data" --stream cam0 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["coverage"][0]["start"])' 2>/dev/null || true)
if [ -n "$first" ] && command -v ffprobe >/dev/null 2>&1; then
  echo
  echo "== every segment checked by ffprobe (independent decoder)"
  bad=0; n=0
  while IFS= read -r f; do
    n=$((n + 1))
    if [ -n "$(ffprobe -v error -i "$f" 2>&1)" ]; then bad=$((bad + 1)); echo "ffprobe complains about $f"; fi
  done < <(find "$data/segments" -name '*.mp4')
  echo "$n segments, $bad with ffprobe errors"
  to=$(python3 -c "import datetime,sys; t=datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')); print((t+datetime.timedelta(seconds=12)).isoformat().replace('+00:00','Z'))" "$first")
  echo
  echo "== understudy export --stream cam0 --from $first --to $to -o $data/clip.mp4"
  $bin export --data-dir "$data" --stream cam0 --from "$first" --to "$to" -o "$data/clip.mp4"
  ffprobe -v error -show_entries format=duration:stream=codec_name,width,height -of compact "$data/clip.mp4"
fi

echo
echo "== understudy fsck --data-dir $data"
$bin fsck --data-dir "$data"
