#!/usr/bin/env bash
# make demo: a tour of `understudy dev`, a 3-node cluster recording 8
# simulated cameras with R=2, driven with `understudy ctl` as a VMS would:
# the cluster recording, one node killed with SIGKILL, the timeline of
# every stream still whole, the node back, placement converged; then what
# the nodes wrote, checked by ffprobe and fsck.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/understudy
data=${DEMO_DATA:-./demo-data}
cams=${DEMO_CAMERAS:-8}
secs=${DEMO_SECONDS:-20}

rm -rf "$data"
mkdir -p "$data"
dev_pid=
cleanup() { [ -n "$dev_pid" ] && kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true; }
trap cleanup EXIT

echo "== understudy dev --dir $data --cameras $cams   (3 nodes in racks r1, r2, r3; every stream on 2 of them)"
$bin dev --dir "$data" --cameras "$cams" --restart-after 20s >"$data/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 150); do [ -f "$data/ready" ] && break; sleep 0.2; done
if [ ! -f "$data/ready" ]; then echo "understudy dev did not start:"; cat "$data/dev.out"; exit 1; fi
cat "$data/dev.out"

export UNDERSTUDY_SERVER=http://127.0.0.1:17481 UNDERSTUDY_TOKEN
UNDERSTUDY_TOKEN=$(cat "$data/admin-token")
ctl() { $bin ctl "$@"; }
start=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo
echo "== recording for ${secs}s ..."
sleep "$secs"
echo
echo "== understudy ctl nodes"
ctl nodes
echo
echo "== understudy ctl placement   (home first, then the replica)"
ctl placement

# The victim: n2 (the tour drives the cluster through n1).
victim=n2
homes=$(ctl placement --json | tr -d ' \n' | grep -o '"stream_id":"[^"]*","node_ids":\["n2"' | sed 's/"stream_id":"\([^"]*\)".*/\1/' | tr '\n' ' ')
pid=$(cat "$data/$victim.pid")
echo
echo "== kill -9 $victim (pid $pid), the home of: ${homes:-no stream}"
kill -9 "$pid"
sleep 12
echo
echo "== understudy ctl nodes   (after the failure detection, about 6 s)"
ctl nodes
echo
echo "== understudy ctl placement   (its streams: the replicas promoted, new replicas placed)"
ctl placement
echo
echo "== waiting for $victim to be restarted (understudy dev restarts a dead node after 20 s) ..."
sleep 25
echo
echo "== understudy ctl nodes   ($victim back)"
ctl nodes
echo
echo "== understudy ctl placement   (converged: as before the failure)"
ctl placement

for ((i = 0; i < cams; i++)); do
  echo
  echo "== understudy ctl timeline --stream cam$i --from $start --to now-3s   (every node's recordings, federated)"
  ctl timeline --stream "cam$i" --from "$start" --to now-3s
done

echo
echo "== waiting 15 s for $victim to backfill its own archive of the time it was down ..."
sleep 15
for s in $homes; do
  echo
  echo "== understudy ctl timeline --stream $s --node $victim --class archive --from $start --to now-12s   ($victim's own archive, its outage copied from the replica)"
  ctl timeline --stream "$s" --node "$victim" --class archive --from "$start" --to now-12s
done
first=${homes%% *}
if [ -n "$first" ]; then
  echo
  echo "== understudy ctl export --stream $first --from $start --to now-3s -o $data/$first.mp4   (one clip cut from every node's recordings, through n1)"
  ctl export --stream "$first" --from "$start" --to now-3s -o "$data/$first.mp4"
  if command -v ffprobe >/dev/null 2>&1; then
    echo "ffprobe: $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$data/$first.mp4") s, $(ffprobe -v error -count_packets -select_streams v -show_entries stream=nb_read_packets -of csv=p=0 "$data/$first.mp4") video frames, decode errors: $(ffmpeg -v error -i "$data/$first.mp4" -f null - 2>&1 | wc -l)"
  fi
fi

echo
echo "== stopping the cluster (Ctrl-C to understudy dev: the nodes close their segments)"
kill -INT "$dev_pid"
wait "$dev_pid" || true
dev_pid=

for n in n1 n2 n3; do
  echo
  echo "== understudy segments --data-dir $data/$n --stream cam0"
  $bin segments --data-dir "$data/$n" --stream cam0 | tail -n 8
done
if command -v ffprobe >/dev/null 2>&1; then
  echo
  echo "== every segment file of every node checked by ffprobe (an independent decoder)"
  bad=0 n=0
  while IFS= read -r f; do
    n=$((n + 1))
    if [ -n "$(ffprobe -v error -i "$f" 2>&1)" ]; then bad=$((bad + 1)); echo "ffprobe complains about $f"; fi
  done < <(find "$data" -path '*/segments/*' -name '*.mp4')
  echo "$n segment files, $bad with ffprobe errors"
fi
for n in n1 n2 n3; do
  echo
  echo "== understudy fsck --data-dir $data/$n"
  $bin fsck --data-dir "$data/$n"
done
