#!/usr/bin/env node
// ice-conformance stdio shim for node-turn 0.0.6 (adapter contract 1.0): a TURN-server IUT (RFC 8656).
//
// Theory of operation: the JSON-RPC loop and helpers are the Node shims' own (../_node/serve.js, ../_node/common.js);
// node-turn's log goes to stderr. start_server creates one node-turn Server with long-term credentials on a loopback
// address (port 0 = a free port picked here, since node-turn treats 0 as "default 3478"), then sends STUN Binding
// requests to it until it answers (deadline 5 s) before answering. stop_server stops it. Options map onto
// node-turn's config: max_allocation_lifetime -> maxAllocateLifetime, default_allocation_lifetime ->
// defaultAllocatetLifetime (sic); any other option is -32601. The ICE-agent methods are absent (-32601).
"use strict";

for (const m of ["log", "info", "debug", "trace", "dir"]) {
  console[m] = (...args) => console.error(...args);
}

const dgram = require("dgram");
const crypto = require("crypto");
const Turn = require("node-turn");
const { RpcError, invalidParams, write, isLoopback, declaredCapabilities } = require("../_node/common.js");

const NAME = "node-turn";
const VERSION = require("node-turn/package.json").version;
const CONTRACT = "1.0";
const CAPABILITIES = declaredCapabilities(__dirname);

function log(...args) {
  console.error(`[${NAME}-shim]`, ...args);
}

function freePort(host) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    s.on("error", reject);
    s.bind({ address: host, port: 0 }, () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

function probe(host, port, deadlineMs) {
  // A STUN Binding request (RFC 8489 section 5), retransmitted until answered or the deadline.
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    const txid = crypto.randomBytes(12);
    const msg = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), txid]);
    let timer = null;
    let rto = 50;
    const end = Date.now() + deadlineMs;
    const finish = (err) => {
      clearTimeout(timer);
      s.close();
      err ? reject(err) : resolve();
    };
    s.on("message", (data) => {
      if (data.length >= 20 && data.subarray(8, 20).equals(txid)) finish(null);
    });
    s.on("error", (e) => finish(e));
    const send = () => {
      if (Date.now() > end) return finish(new RpcError(-32603, `node-turn on ${host}:${port} did not answer`));
      s.send(msg, port, host);
      timer = setTimeout(send, rto);
      rto = Math.min(rto * 2, 500);
    };
    s.bind({ address: host, port: 0 }, send);
  });
}

const servers = new Map();

async function startServer(p) {
  if (p.kind !== "turn" && p.kind !== "stun") throw invalidParams(`unknown server kind ${p.kind}`);
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(String(p.listen || ""));
  if (!m) throw invalidParams(`listen ${JSON.stringify(p.listen)} is not host:port`);
  const host = m[1] || "127.0.0.1";
  if (!isLoopback(host)) throw invalidParams(`listen address ${host} is not loopback`);
  const port = Number(m[2]) || (await freePort(host));
  const options = p.options || {};
  const base = 49152 + 64 * Math.floor(Math.random() * 240);
  const config = {
    authMech: "long-term",
    credentials: p.users || {},
    realm: p.realm || "iut.test",
    listeningIps: [host],
    relayIps: [host],
    listeningPort: port,
    minPort: base,
    maxPort: base + 63,
    debugLevel: "ALL",
    log: (msg) => log(msg),
  };
  for (const [k, v] of Object.entries(options)) {
    if (k === "max_allocation_lifetime") config.maxAllocateLifetime = Number(v);
    else if (k === "default_allocation_lifetime") config.defaultAllocatetLifetime = Number(v);
    else throw new RpcError(-32601, `option ${k} is not supported by node-turn (its timers are fixed)`);
  }
  const server = new Turn(config);
  server.start();
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  servers.set(address, server);
  try {
    await probe(host, port, 5000);
  } catch (e) {
    server.stop();
    servers.delete(address);
    throw e;
  }
  return { server: address, address };
}

async function stopServer(p) {
  const s = servers.get(p.server);
  if (!s) throw new RpcError(-32001, `no server ${p.server}`);
  servers.delete(p.server);
  s.stop();
  return {};
}

function closeAll() {
  for (const s of servers.values()) s.stop();
  servers.clear();
}

const METHODS = {
  initialize: async () => ({ name: NAME, version: VERSION, capabilities: CAPABILITIES, contract: CONTRACT }),
  start_server: startServer,
  stop_server: stopServer,
  shutdown: async () => {
    closeAll();
    return {};
  },
};

require("../_node/serve.js").serve({ methods: METHODS, closeAll, write, log, RpcError });
