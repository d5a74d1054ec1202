"use strict";
// Helpers the Node shims share: JSON-RPC errors and output (docs/adapter-contract.md), and the loopback guard
// every shim applies to interfaces, servers and remote candidates (traffic stays on 127.0.0.0/8 and ::1).

const fs = require("fs");
const net = require("net");
const path = require("path");

class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

const invalidParams = (msg) => new RpcError(-32602, msg);

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function notify(method, params) {
  write({ jsonrpc: "2.0", method, params });
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

function isLoopback(addr) {
  const fam = net.isIP(addr);
  if (fam === 4) return LOOPBACK.check(addr, "ipv4");
  if (fam === 6) return LOOPBACK.check(addr, "ipv6");
  return false;
}

function requireLoopback(addr, what) {
  if (!isLoopback(addr)) throw invalidParams(`${what} ${addr} is not a loopback address literal`);
  return addr;
}

function parseHostPort(s, what) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) || /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw invalidParams(`${what} ${JSON.stringify(s)} is not host:port`);
  return [requireLoopback(m[1], what), Number(m[2])];
}

function parseTurnUri(uri) {
  const m = /^(turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(uri);
  if (!m) throw invalidParams(`TURN uri ${JSON.stringify(uri)} not understood`);
  const secure = m[1].toLowerCase() === "turns";
  const host = requireLoopback(m[2].replace(/^\[|\]$/g, ""), "TURN server");
  const port = m[3] ? Number(m[3]) : secure ? 5349 : 3478;
  const transport = secure ? "tls" : (m[4] || "udp").toLowerCase();
  return { host, port, transport };
}

function stripCandidate(s) {
  return String(s).replace(/^a=/, "").replace(/^candidate:/, "");
}

// A remote candidate from the harness as an SDP candidate value, or null (logged) when it is not on loopback: the
// shims are loopback-only. A line with fewer than 8 fields is invalid params.
function acceptLoopbackCandidate(cand, log) {
  const value = "candidate:" + stripCandidate(cand);
  const f = value.split(/\s+/);
  if (f.length < 8) throw invalidParams(`bad candidate ${JSON.stringify(cand)}`);
  if (!isLoopback(f[4])) {
    log("dropping non-loopback remote candidate (shim is loopback-only):", cand);
    return null;
  }
  return value;
}

// The peer's a=ice-options tokens from set_remote's `options.ice_options` (contract 1.1), plus "trickle" for a
// trickle agent; null when there are none (RFC 8839 §5.6).
function iceOptionsLine(options, trickle) {
  const given = options && Array.isArray(options.ice_options) ? options.ice_options : [];
  const tokens = given.map(String).filter((t) => /^[\x21-\x7e]+$/.test(t));
  if (trickle && !tokens.includes("trickle")) tokens.push("trickle");
  return tokens.length ? "a=ice-options:" + tokens.join(" ") : null;
}

// Contract 1.2: the set_remote options this shim really writes into the remote SDP. `ice_options` become its
// a=ice-options line; `default_destination` only when it is the c=/m= address the shim always writes (0.0.0.0, port
// 9); `ice_mismatch` is never written, so it is not reported.
function appliedOptions(options) {
  const out = [];
  if (options && Array.isArray(options.ice_options)) out.push("ice_options");
  if (options && options.default_destination === "0.0.0.0:9") out.push("default_destination");
  return out;
}

// The capabilities a shim declares: `declared` of the [capabilities] table of the iut.toml in its folder (the file
// the harness's registry reads, conformance/adapters/registry.py). Only that array of strings is read.
function declaredCapabilities(folder) {
  const text = fs.readFileSync(path.join(folder, "iut.toml"), "utf8");
  const table = /^\[capabilities\][^]*?^declared\s*=\s*\[([^\]]*)\]/m.exec(text);
  if (!table) throw new Error(`${folder}/iut.toml declares no [capabilities] declared = [...]`);
  return [...table[1].matchAll(/"([^"\\]*)"/g)].map((m) => m[1]);
}

module.exports = {
  acceptLoopbackCandidate,
  declaredCapabilities,
  appliedOptions,
  iceOptionsLine,
  RpcError,
  invalidParams,
  write,
  notify,
  isLoopback,
  requireLoopback,
  parseHostPort,
  parseTurnUri,
  stripCandidate,
};
