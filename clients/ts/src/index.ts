// The TypeScript client of the Understudy API. The messages and service
// descriptors in ./gen are generated from proto/understudy/v1 by
// protoc-gen-es (`make ts-gen`); this file adds a Connect transport that
// sends the node's bearer token, and one client per service.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ClusterService } from "./gen/understudy/v1/cluster_pb.js";
import { RecordingService } from "./gen/understudy/v1/recording_pb.js";
import { StreamService } from "./gen/understudy/v1/stream_pb.js";

export * from "./gen/understudy/v1/cluster_pb.js";
export * from "./gen/understudy/v1/recording_pb.js";
export * from "./gen/understudy/v1/stream_pb.js";

export interface UnderstudyOptions {
  /** Base URL of any node, e.g. "http://127.0.0.1:7480". */
  baseUrl: string;
  /**
   * Admin or read token, sent as `Authorization: Bearer TOKEN`. In a
   * browser, a frontend may instead leave it out and let a reverse proxy
   * add the header.
   */
  token?: string;
  /** Speak Connect's binary format instead of JSON (smaller, opaque). */
  useBinaryFormat?: boolean;
  /** Interceptors run before the token is added (logging, retries, ...). */
  interceptors?: Interceptor[];
  /** fetch to use; the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/** bearerToken returns an interceptor that authenticates every call. */
export function bearerToken(token: string): Interceptor {
  if (token === "") {
    throw new Error("understudy: empty token");
  }
  return (next) => async (req) => {
    req.header.set("Authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * createTransport returns a Connect transport (fetch-based: browsers,
 * Node >= 18, Deno, Bun) to one node of the cluster.
 */
export function createTransport(opts: UnderstudyOptions): Transport {
  let url: URL;
  try {
    url = new URL(opts.baseUrl);
  } catch {
    throw new Error(`understudy: base URL ${JSON.stringify(opts.baseUrl)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`understudy: base URL ${JSON.stringify(opts.baseUrl)}: want http:// or https://`);
  }
  const interceptors = [...(opts.interceptors ?? [])];
  if (opts.token !== undefined) {
    interceptors.push(bearerToken(opts.token));
  }
  return createConnectTransport({
    baseUrl: url.toString().replace(/\/+$/, ""),
    useBinaryFormat: opts.useBinaryFormat ?? false,
    interceptors,
    fetch: opts.fetch,
  });
}

/** UnderstudyClient holds one typed client per service of the API. */
export interface UnderstudyClient {
  streams: Client<typeof StreamService>;
  recordings: Client<typeof RecordingService>;
  cluster: Client<typeof ClusterService>;
}

/** createUnderstudyClient returns clients of the three services of a node. */
export function createUnderstudyClient(opts: UnderstudyOptions | Transport): UnderstudyClient {
  const transport = "baseUrl" in opts ? createTransport(opts) : opts;
  return {
    streams: createClient(StreamService, transport),
    recordings: createClient(RecordingService, transport),
    cluster: createClient(ClusterService, transport),
  };
}
