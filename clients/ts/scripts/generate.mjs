// Generates the TypeScript code of proto/understudy/v1 with protoc-gen-es,
// without protoc or buf: the plugin is fed a CodeGeneratorRequest built from
// proto/understudy/v1/descriptor_set.binpb, the descriptor set (with
// comments) that `make proto` writes with buf and whose currency against the
// .proto files the Go tests of proto/understudy/v1 check. So the chain
// .proto -> descriptor_set.binpb -> src/gen is checked end to end on a
// machine with only Go and Node.
//
//   node scripts/generate.mjs OUTDIR          write the generated files
//   node scripts/generate.mjs --check OUTDIR  non-zero when OUTDIR differs
//                                            from what the plugin writes now
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const descriptorSet = path.resolve(root, "../../proto/understudy/v1/descriptor_set.binpb");
const plugin = path.join(root, "node_modules/.bin/protoc-gen-es");
// target=ts: TypeScript sources, compiled with the rest of the package.
// import_extension=js: ES module imports that Node and bundlers resolve.
const parameter = "target=ts,import_extension=js";

function usage() {
  console.error("usage: node scripts/generate.mjs [--check] OUTDIR");
  process.exit(2);
}

const args = process.argv.slice(2);
const check = args[0] === "--check";
if (check) args.shift();
if (args.length !== 1) usage();
const outDir = path.resolve(process.cwd(), args[0]);

function generate() {
  const set = fromBinary(FileDescriptorSetSchema, fs.readFileSync(descriptorSet));
  const toGenerate = set.file.map((f) => f.name).filter((n) => n.startsWith("understudy/"));
  if (toGenerate.length === 0) {
    throw new Error(`${descriptorSet}: no understudy/ file in the descriptor set`);
  }
  const req = create(CodeGeneratorRequestSchema, {
    fileToGenerate: toGenerate,
    parameter,
    protoFile: set.file,
  });
  const out = execFileSync(plugin, [], {
    input: toBinary(CodeGeneratorRequestSchema, req),
    maxBuffer: 64 << 20,
  });
  const res = fromBinary(CodeGeneratorResponseSchema, out);
  if (res.error) {
    throw new Error(`protoc-gen-es: ${res.error}`);
  }
  const files = new Map();
  for (const f of res.file) {
    if (f.insertionPoint) throw new Error(`unexpected insertion point in ${f.name}`);
    files.set(f.name, f.content);
  }
  return files;
}

// listTree returns the files under dir as slash-separated relative paths.
function listTree(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const abs = path.join(e.parentPath ?? e.path, e.name);
    out.push(path.relative(dir, abs).split(path.sep).join("/"));
  }
  return out.sort();
}

const files = generate();

if (check) {
  const problems = [];
  for (const [name, content] of files) {
    const p = path.join(outDir, name);
    if (!fs.existsSync(p)) problems.push(`${name}: missing`);
    else if (fs.readFileSync(p, "utf8").replace(/\r\n/g, "\n") !== content) problems.push(`${name}: differs from what protoc-gen-es generates`);
  }
  for (const name of listTree(outDir)) {
    if (!files.has(name)) problems.push(`${name}: not generated from any .proto file (stale?)`);
  }
  if (problems.length > 0) {
    console.error(`check-generated: ${path.relative(process.cwd(), outDir) || "."} is not current: run make ts-gen`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-generated: ${files.size} generated files are current`);
} else {
  // Written into a fresh directory, then swapped in, so a deleted .proto
  // leaves no stale file behind.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "understudy-ts-gen-"));
  for (const [name, content] of files) {
    const p = path.join(tmp, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  fs.cpSync(tmp, outDir, { recursive: true });
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`generated ${files.size} files into ${path.relative(process.cwd(), outDir) || "."}`);
}
