#!/usr/bin/env node
// ice-conformance stdio shim for werift-ice 0.2.3 (adapter contract 1.0).
//
// Theory of operation: JSON-RPC 2.0, one object per line, requests on stdin, responses and
// notifications on stdout; everything else (werift's own logging included) goes to stderr.
// Each agent is one werift-ice `Connection` (the bare ICE API, one component). The shim keeps
// werift on loopback by itself: host discovery is disabled (`getHostAddresses = () => []`), the
// host candidates are exactly the loopback `interfaces`, sockets are bound to them, werift's
// built-in default STUN server (stun.l.google.com) is removed, and every server address and remote
// candidate that is not a loopback literal is refused or dropped (and logged).
"use strict";

// stdout belongs to the protocol: route every console method to stderr before loading werift.
for (const m of ["log", "info", "debug", "trace", "dir"]) {
  console[m] = (...args) => console.error(...args);
}

const net = require("net");
const utils = require("werift-ice/lib/ice/src/utils");
const { Connection, Candidate } = require("werift-ice");

utils.getHostAddresses = () => []; // never enumerate the machine's NICs

const NAME = "werift-ice";
const VERSION = require("werift-ice/package.json").version;
const CONTRACT = "1.2";
const CAPABILITIES = require("../_node/common.js").declaredCapabilities(__dirname);

const {
  RpcError,
  invalidParams,
  write,
  notify,
  isLoopback,
  requireLoopback,
  parseHostPort,
  parseTurnUri,
  stripCandidate,
} = require("../_node/common.js");

// ---------------------------------------------------------------- JSON-RPC plumbing

function log(...args) {
  console.error(`[${NAME}-shim]`, ...args);
}

// ---------------------------------------------------------------- loopback guard

// "host:port", "[v6]:port"
// "turn:host:port?transport=udp", "turns:[::1]:5349"
// ---------------------------------------------------------------- agents

const agents = new Map();
let nextAgent = 1;

function getAgent(params) {
  const a = agents.get(params && params.agent);
  if (!a) throw new RpcError(-32001, `unknown agent ${JSON.stringify(params && params.agent)}`);
  return a;
}

function candidateString(c) {
  return "candidate:" + c.toSdp();
}

function emitState(a, state) {
  if (a.lastState === state) return;
  a.lastState = state;
  notify("state", { agent: a.id, state });
}

function emitSelectedPair(a) {
  const pair = a.conn.nominated;
  if (!pair) return;
  const local = candidateString(pair.localCandidate);
  const remote = candidateString(pair.remoteCandidate);
  const key = local + "|" + remote;
  if (a.lastPair === key) return;
  if (a.lastPair !== null) log(`${a.id}: selected pair changed from ${a.lastPair} to ${key}`);
  a.lastPair = key;
  notify("selected_pair", { agent: a.id, component: 1, local, remote });
}

// werift-ice has no event for its selected pair: `Connection.nominated` is a plain property, set in checkComplete
// when a nominated pair succeeds (once per ICE generation; restart clears it). Turning it into an accessor on this
// instance reports the pair the moment werift selects it, whatever its state does (the contract asks a
// selected_pair each time the pair is set or changes); the 'connected' paths below stay as a second look.
function watchNominated(a) {
  let value = a.conn.nominated;
  Object.defineProperty(a.conn, "nominated", {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (pair) => {
      value = pair;
      if (pair && agents.has(a.id)) emitSelectedPair(a);
    },
  });
}

function createAgent(p) {
  const role = p.role;
  if (role !== "controlling" && role !== "controlled") throw invalidParams(`bad role ${JSON.stringify(role)}`);
  const components = p.components === undefined ? 1 : Number(p.components);
  if (components !== 1) throw invalidParams("werift-ice has a single component per Connection");
  const options = p.options || {};
  const interfaces = (p.interfaces && p.interfaces.length ? p.interfaces : ["127.0.0.1"]).map((i) =>
    requireLoopback(i, "interface"),
  );
  const v4 = interfaces.filter((i) => net.isIPv4(i));
  const v6 = interfaces.filter((i) => net.isIPv6(i));
  if (v4.length > 1 || v6.length > 1) {
    throw invalidParams("werift-ice binds at most one address per family (interfaceAddresses)");
  }
  const iceOpts = {
    useIpv4: v4.length > 0,
    useIpv6: v6.length > 0,
    additionalHostAddresses: interfaces,
    interfaceAddresses: {},
    iceLite: Boolean(options.lite),
    useTcp: Boolean(options.tcp),
  };
  if (v4.length) iceOpts.interfaceAddresses.udp4 = v4[0];
  if (v6.length) iceOpts.interfaceAddresses.udp6 = v6[0];
  if (Array.isArray(options.port_range)) iceOpts.portRange = options.port_range.map(Number);

  const stun = (p.stun_servers || []).map((s) => parseHostPort(s, "STUN server"));
  if (stun.length > 1) log("werift-ice uses one STUN server; ignoring", stun.slice(1));
  if (stun.length) iceOpts.stunServer = stun[0];

  const turn = p.turn_servers || [];
  if (turn.length > 1) log("werift-ice uses one TURN server; ignoring all but the first");
  if (turn.length) {
    const t = parseTurnUri(turn[0].uri);
    iceOpts.turnServer = [t.host, t.port];
    iceOpts.turnUsername = String(turn[0].username);
    iceOpts.turnPassword = String(turn[0].password);
    iceOpts.turnTransport = t.transport;
  }
  if (p.relay_only) {
    if (!turn.length) throw invalidParams("relay_only needs a TURN server");
    iceOpts.forceTurn = true;
  }

  const conn = new Connection(role === "controlling", iceOpts);
  // The constructor falls back to stun.l.google.com:19302 when no STUN server is given.
  conn.stunServer = stun.length ? stun[0] : undefined;
  if (p.ufrag !== undefined || p.pwd !== undefined) {
    delete conn.userHistory[conn.localUsername];
    if (p.ufrag !== undefined) conn.localUsername = String(p.ufrag);
    if (p.pwd !== undefined) conn.localPassword = String(p.pwd);
    conn.userHistory[conn.localUsername] = conn.localPassword;
  }

  const id = `a${nextAgent++}`;
  const a = {
    id,
    conn,
    trickle: Boolean(p.trickle),
    connecting: false,
    lastState: "new",
    lastPair: null,
    gathering: null,
    connectRun: 0,
  };
  agents.set(id, a);
  watchNominated(a);

  conn.onIceCandidate.subscribe((c) => {
    if (a.trickle && agents.has(id)) notify("candidate", { agent: id, candidate: candidateString(c) });
  });
  conn.stateChanged.subscribe((s) => {
    if (!agents.has(id) && s !== "closed") return;
    // werift reports "completed" when *gathering* ends; it is not an ICE state.
    if (s === "completed" || s === "new") return;
    if (s === "connected") emitSelectedPair(a);
    emitState(a, s);
  });
  conn.onData.subscribe((buf) => {
    notify("data", { agent: id, component: 1, data: Buffer.from(buf).toString("base64") });
  });
  return { agent: id };
}

function startGathering(a) {
  if (!a.gathering) {
    const conn = a.conn;
    a.gathering = conn
      .gatherCandidates()
      .catch((e) => log("gather failed", e))
      .then(() => {
        if (a.trickle && agents.has(a.id)) notify("candidate", { agent: a.id, candidate: null });
      });
  }
  return a.gathering;
}

async function gather(p) {
  const a = getAgent(p);
  const done = startGathering(a);
  if (!a.trickle) await done;
  return {
    ufrag: a.conn.localUsername,
    pwd: a.conn.localPassword,
    candidates: a.trickle ? [] : a.conn.localCandidates.map(candidateString),
  };
}

async function addRemote(a, cand) {
  let c;
  try {
    c = Candidate.fromSdp(stripCandidate(cand));
  } catch (e) {
    throw invalidParams(`bad candidate ${JSON.stringify(cand)}: ${e.message}`);
  }
  if (!isLoopback(c.host)) {
    log("dropping non-loopback remote candidate (shim is loopback-only):", cand);
    return;
  }
  await a.conn.addRemoteCandidate(c);
}

async function setRemote(p) {
  const a = getAgent(p);
  if (typeof p.ufrag !== "string" || typeof p.pwd !== "string") throw invalidParams("ufrag and pwd are required");
  a.conn.setRemoteParams({ iceLite: Boolean(p.lite), usernameFragment: p.ufrag, password: p.pwd });
  for (const c of p.candidates || []) await addRemote(a, c);
  // A non-trickle agent gets the complete list in one go (RFC 8838 §4: vanilla ICE).
  if (!a.trickle) await a.conn.addRemoteCandidate(undefined);
  // werift-ice has no API for the peer's ice-options or other SDP-level signalling: none is applied (contract 1.2).
  if (p.options && Object.keys(p.options).length) log("werift-ice takes no SDP-level options; ignoring", Object.keys(p.options));
  return { applied_options: [] };
}

async function addRemoteCandidate(p) {
  const a = getAgent(p);
  if (p.candidate === null || p.candidate === undefined || p.candidate === "") {
    await a.conn.addRemoteCandidate(undefined);
  } else {
    await addRemote(a, p.candidate);
  }
  return {};
}

async function connect(p) {
  const a = getAgent(p);
  const run = ++a.connectRun;
  emitState(a, "checking");
  startGathering(a)
    .then(() => a.conn.connect())
    .then(
      () => {
        if (run !== a.connectRun || !agents.has(a.id)) return;
        emitSelectedPair(a);
        emitState(a, "connected");
      },
      (e) => {
        if (run !== a.connectRun || !agents.has(a.id)) return;
        log("connect failed:", e && e.message);
        if (a.conn.state !== "closed") emitState(a, "failed");
      },
    );
  return {};
}

async function send(p) {
  const a = getAgent(p);
  if (Number(p.component ?? 1) !== 1) throw invalidParams("werift-ice has only component 1");
  if (typeof p.data !== "string") throw invalidParams("data must be base64");
  // werift itself drops the datagram when no pair is selected or consent has expired (RFC 7675).
  await a.conn.send(Buffer.from(p.data, "base64"));
  return {};
}

async function restart(p) {
  const a = getAgent(p);
  a.connectRun++;
  await a.conn.restart();
  a.gathering = null;
  a.lastPair = null;
  a.lastState = "new";
  // Re-advertise the host candidates under the new credentials (a later `gather` returns them).
  const done = startGathering(a);
  if (!a.trickle) await done;
  return { ufrag: a.conn.localUsername, pwd: a.conn.localPassword };
}

async function closeAgent(p) {
  const a = getAgent(p);
  a.connectRun++;
  await a.conn.close();
  emitState(a, "closed");
  agents.delete(a.id);
  return {};
}

async function closeAll() {
  for (const a of [...agents.values()]) {
    try {
      await a.conn.close();
    } catch (e) {
      log("close failed", e);
    }
    agents.delete(a.id);
  }
}

const METHODS = {
  initialize: async () => ({ name: NAME, version: VERSION, capabilities: CAPABILITIES, contract: CONTRACT }),
  create_agent: async (p) => createAgent(p),
  gather,
  set_remote: setRemote,
  add_remote_candidate: addRemoteCandidate,
  connect,
  send,
  restart,
  close: closeAgent,
  shutdown: async () => {
    await closeAll();
    return {};
  },
};

// ---------------------------------------------------------------- main loop

require("../_node/serve.js").serve({ methods: METHODS, closeAll, write, log, RpcError });
log(`ready (werift-ice ${VERSION}, node ${process.version})`);
