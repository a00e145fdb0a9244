// list-and-timeline lists the streams of a cluster and prints the timeline
// of the first one over the last 10 minutes: what was recorded, by which
// nodes, and the gaps.
//
//   UNDERSTUDY_SERVER=http://127.0.0.1:7480 \
//   UNDERSTUDY_TOKEN=$(cat /etc/understudy/admin.token) \
//   node dist/examples/list-and-timeline.js
//
// The read token is enough. Exits 1 on any error, with Connect's code.
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createUnderstudyClient,
  GapKind,
  Origin,
  StreamState,
  type Stream,
} from "../src/index.js";

const WINDOW_MS = 10 * 60 * 1000;

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") {
    throw new Error(`${name} is not set`);
  }
  return v;
}

function iso(ts: Timestamp | undefined): string {
  return ts === undefined ? "-" : timestampDate(ts).toISOString();
}

function ms(ts: Timestamp | undefined): number {
  return ts === undefined ? 0 : timestampDate(ts).getTime();
}

async function main(): Promise<void> {
  const client = createUnderstudyClient({
    baseUrl: env("UNDERSTUDY_SERVER"),
    token: env("UNDERSTUDY_TOKEN"),
  });

  // Every page of the catalog, ordered by id.
  const streams: Stream[] = [];
  let pageToken = "";
  do {
    const page = await client.streams.listStreams({ pageSize: 100, pageToken });
    streams.push(...page.streams);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");

  console.log(`streams: ${streams.length}`);
  for (const s of streams) {
    const state = StreamState[s.status?.state ?? StreamState.UNSPECIFIED] ?? "UNKNOWN";
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",");
    console.log(`  ${s.id}\t${state}\tenabled=${s.enabled}\treplicas=${s.replicas}\t${s.url}${labels ? `\t${labels}` : ""}`);
  }
  const first = streams[0];
  if (first === undefined) {
    console.log("no stream: nothing to show a timeline of");
    return;
  }

  const end = new Date();
  const start = new Date(end.getTime() - WINDOW_MS);
  const tl = await client.recordings.getTimeline({
    streamId: first.id,
    start: timestampFromDate(start),
    end: timestampFromDate(end),
  });

  console.log(`timeline of ${first.id} from ${start.toISOString()} to ${end.toISOString()}:`);
  type Row = { start: number; line: string };
  const rows: Row[] = [];
  let covered = 0;
  let total = 0;
  for (const c of tl.coverage) {
    const d = ms(c.end) - ms(c.start);
    covered += d;
    total += d;
    rows.push({
      start: ms(c.start),
      line: `  recorded ${iso(c.start)} .. ${iso(c.end)}\t${c.nodeIds.join(",")}\t${Origin[c.origin] ?? c.origin}`,
    });
  }
  for (const g of tl.gaps) {
    total += ms(g.end) - ms(g.start);
    rows.push({
      start: ms(g.start),
      line: `  gap      ${iso(g.start)} .. ${iso(g.end)}\t${GapKind[g.kind] ?? g.kind}`,
    });
  }
  rows.sort((a, b) => a.start - b.start);
  for (const r of rows) console.log(r.line);
  const pct = total > 0 ? ((100 * covered) / total).toFixed(2) : "0.00";
  console.log(`coverage: ${tl.coverage.length} intervals, gaps: ${tl.gaps.length}, ${pct} % recorded`);
}

main().catch((err: unknown) => {
  if (err instanceof ConnectError) {
    console.error(`list-and-timeline: ${Code[err.code] ?? err.code}: ${err.rawMessage}`);
  } else {
    console.error(`list-and-timeline: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exit(1);
});
