#!/usr/bin/env node
// ice-conformance stdio shim for libjuice, through node-datachannel 0.33.4 (libdatachannel), adapter contract 1.0.
//
// Theory of operation: JSON-RPC 2.0, one object per line, requests on stdin, responses and
// notifications on stdout; everything else goes to stderr. libdatachannel exposes ICE only through
// SDP offer/answer, so each agent is one `PeerConnection` (auto-negotiation off, one data channel so
// that there is an m=application section) and the harness side becomes a hand-written remote SDP:
//   * controlling = the offerer: `gather` creates the local offer (chosen ice-ufrag/ice-pwd through
//     setLocalDescription's init), `set_remote` stores the harness side, and `connect` applies it as
//     the remote ANSWER (a=setup:active, dummy fingerprint), which starts the checks.
//   * controlled = the answerer: `set_remote` must come BEFORE `gather` (the answer needs the offer);
//     `gather` applies the harness side as the remote OFFER (a=setup:active, so libdatachannel answers
//     passive and never sends DTLS first) and creates the local answer; libjuice starts checking at
//     once, `connect` only marks the point.
// Not available through libdatachannel and therefore refused: `send` (ICE-level datagrams are not
// exposed; a data channel would need DTLS+SCTP with the peer, which the harness peer does not speak),
// `restart` (no ICE restart), more than one component, and end-of-candidates after the remote
// description has been applied (it can only travel inside the SDP).
// Loopback only: libjuice binds the single loopback `interfaces` address (bindAddress), server
// addresses and remote candidates must be loopback literals (others are refused or dropped and logged).
"use strict";

for (const m of ["log", "info", "debug", "trace", "dir"]) {
  console[m] = (...args) => console.error(...args);
}

const net = require("net");
const ndc = require("node-datachannel");

// The version of an installed package (its package.json may be hidden behind "exports").
function packageVersion(name) {
  for (const base of require.resolve.paths(name) || []) {
    try {
      return JSON.parse(require("fs").readFileSync(require("path").join(base, name, "package.json"), "utf8")).version;
    } catch (e) {
      // not in this folder
    }
  }
  return "unknown";
}

const NAME = "libjuice";
const VERSION = `node-datachannel ${packageVersion("node-datachannel")}`;
const CONTRACT = "1.2";
const CAPABILITIES = require("../_node/common.js").declaredCapabilities(__dirname);

ndc.initLogger(process.env.ICE_SHIM_LOG_LEVEL || "Warning", (level, message) =>
  console.error(`[libdatachannel ${level}] ${message}`),
);

const {
  RpcError,
  acceptLoopbackCandidate,
  appliedOptions,
  iceOptionsLine,
  invalidParams,
  write,
  notify,
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
const MID = "0";
const DUMMY_FINGERPRINT = Array(32).fill("AB").join(":");

function getAgent(params) {
  const a = agents.get(params && params.agent);
  if (!a) throw new RpcError(-32001, `unknown agent ${JSON.stringify(params && params.agent)}`);
  return a;
}

const PAIR_WATCH_MS = 20; // how often a connected agent's selected pair is read for changes

function emitState(a, state) {
  if (a.lastState === state) return;
  a.lastState = state;
  notify("state", { agent: a.id, state });
}

function candidateValue(c) {
  // libdatachannel hands out "a=candidate:..." lines; the contract wants attribute values.
  return "candidate:" + stripCandidate(c);
}

function emitSelectedPair(a) {
  let pair = null;
  try {
    pair = a.pc.getSelectedCandidatePair();
  } catch (e) {
    log("getSelectedCandidatePair failed", e);
  }
  if (!pair || !pair.local || !pair.remote) return;
  const local = candidateValue(pair.local.candidate);
  const remote = candidateValue(pair.remote.candidate);
  const key = local + "|" + remote;
  if (a.lastPair === key) return;
  a.lastPair = key;
  notify("selected_pair", { agent: a.id, component: 1, local, remote });
}

function iceServerUrl(t) {
  const { host, port, transport } = parseTurnUri(t.uri);
  const relayType = transport === "tls" ? "TurnTls" : transport === "tcp" ? "TurnTcp" : "TurnUdp";
  return { hostname: host, port, username: String(t.username), password: String(t.password), relayType };
}

function createAgent(p) {
  const role = p.role;
  if (role !== "controlling" && role !== "controlled") throw invalidParams(`bad role ${JSON.stringify(role)}`);
  const components = p.components === undefined ? 1 : Number(p.components);
  if (components !== 1) throw invalidParams("libdatachannel bundles everything on one component");
  const options = p.options || {};
  const interfaces = (p.interfaces && p.interfaces.length ? p.interfaces : ["127.0.0.1"]).map((i) =>
    requireLoopback(i, "interface"),
  );
  if (interfaces.length !== 1) throw new RpcError(-32601, "unsupported: libjuice binds exactly one address (bindAddress)");
  const iceServers = [];
  for (const s of p.stun_servers || []) {
    const [hostname, port] = parseHostPort(s, "STUN server");
    iceServers.push({ hostname, port });
  }
  for (const t of p.turn_servers || []) iceServers.push(iceServerUrl(t));
  if (p.relay_only && !(p.turn_servers || []).length) throw invalidParams("relay_only needs a TURN server");
  const config = {
    iceServers,
    bindAddress: interfaces[0],
    disableAutoNegotiation: true,
    iceTransportPolicy: p.relay_only ? "relay" : "all",
    enableIceTcp: false,
  };
  if (Array.isArray(options.port_range)) {
    config.portRangeBegin = Number(options.port_range[0]);
    config.portRangeEnd = Number(options.port_range[1]);
  }
  const id = `a${nextAgent++}`;
  const pc = new ndc.PeerConnection(id, config);
  const a = {
    id,
    pc,
    role,
    trickle: Boolean(p.trickle),
    ufrag: p.ufrag === undefined ? undefined : String(p.ufrag),
    pwd: p.pwd === undefined ? undefined : String(p.pwd),
    remote: null, // {ufrag, pwd, lite, candidates: [], ended}
    remoteApplied: false,
    localSet: false,
    gatherDone: null,
    connected: false,
    lastState: "new",
    lastPair: null,
  };
  let gatherResolve;
  a.gatherDone = new Promise((r) => (gatherResolve = r));
  pc.onLocalCandidate((c) => {
    if (a.trickle && agents.has(id)) notify("candidate", { agent: id, candidate: candidateValue(c) });
  });
  pc.onGatheringStateChange((s) => {
    if (s === "complete") {
      gatherResolve();
      if (a.trickle && agents.has(id)) notify("candidate", { agent: id, candidate: null });
    }
  });
  pc.onIceStateChange((s) => {
    if (!agents.has(id)) return;
    if (s === "new") return;
    if (s === "connected" || s === "completed") {
      emitSelectedPair(a);
      // libdatachannel has no event for a change of the selected pair (a controlled agent moving to a
      // higher-priority nomination keeps its state): watch the pair while connected, as the contract asks a
      // selected_pair for every change (docs/adapter-contract.md, notifications).
      if (!a.watch) a.watch = setInterval(() => emitSelectedPair(a), PAIR_WATCH_MS);
    }
    emitState(a, s);
  });
  // The one data channel only makes libdatachannel put an m=application section in the SDP.
  a.dc = pc.createDataChannel("ice-conformance");
  agents.set(id, a);
  return { agent: id };
}

function parseLocal(a) {
  const desc = a.pc.localDescription();
  const sdp = (desc && desc.sdp) || "";
  const lines = sdp.split(/\r?\n/);
  const get = (k) => {
    const l = lines.find((x) => x.startsWith(`a=${k}:`));
    return l ? l.slice(k.length + 3).trim() : "";
  };
  return {
    ufrag: get("ice-ufrag"),
    pwd: get("ice-pwd"),
    candidates: lines.filter((l) => l.startsWith("a=candidate:")).map(candidateValue),
  };
}

function remoteSdp(a) {
  const r = a.remote;
  const out = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    `a=mid:${MID}`,
    `a=ice-ufrag:${r.ufrag}`,
    `a=ice-pwd:${r.pwd}`,
  ];
  if (r.lite) out.splice(4, 0, "a=ice-lite");
  if (r.iceOptions) out.push(r.iceOptions);
  out.push(`a=fingerprint:sha-256 ${DUMMY_FINGERPRINT}`);
  // Offer or answer, the harness side takes the DTLS client role, so libdatachannel (server) never
  // sends DTLS on its own.
  out.push("a=setup:active", "a=sctp-port:5000", "a=max-message-size:262144");
  for (const c of r.candidates) out.push("a=" + c);
  if (r.ended) out.push("a=end-of-candidates");
  return out.join("\r\n") + "\r\n";
}

const acceptRemoteCandidate = (cand) => acceptLoopbackCandidate(cand, log);

function applyRemote(a, type) {
  const sdp = remoteSdp(a);
  log(`remote ${type} (the harness side):\n${sdp.trimEnd()}`);
  a.pc.setRemoteDescription(sdp, type);
  a.remoteApplied = true;
}

async function waitGathered(a) {
  if (!a.trickle) await a.gatherDone;
}

async function gather(p) {
  const a = getAgent(p);
  if (!a.localSet) {
    const init = {};
    if (a.ufrag !== undefined) init.iceUfrag = a.ufrag;
    if (a.pwd !== undefined) init.icePwd = a.pwd;
    if (a.role === "controlling") {
      a.pc.setLocalDescription("offer", init);
    } else {
      if (!a.remote) {
        throw new RpcError(
          -32000,
          "libjuice (controlled) is the SDP answerer: call set_remote before gather",
        );
      }
      applyRemote(a, "offer");
      a.pc.setLocalDescription("answer", init);
    }
    a.localSet = true;
  }
  await waitGathered(a);
  const local = parseLocal(a);
  if (a.trickle) local.candidates = [];
  return local;
}

async function setRemote(p) {
  const a = getAgent(p);
  if (typeof p.ufrag !== "string" || typeof p.pwd !== "string") throw invalidParams("ufrag and pwd are required");
  if (a.remoteApplied) throw new RpcError(-32000, "the remote description is already applied; libdatachannel has no ICE restart");
  const candidates = [];
  for (const c of p.candidates || []) {
    const v = acceptRemoteCandidate(c);
    if (v) candidates.push(v);
  }
  // A non-trickle agent gets the complete list at once (vanilla ICE): end-of-candidates goes in the SDP.
  const iceOptions = iceOptionsLine(p.options, a.trickle);
  a.remote = { ufrag: p.ufrag, pwd: p.pwd, lite: Boolean(p.lite), candidates, ended: !a.trickle, iceOptions };
  return { applied_options: appliedOptions(p.options) };
}

async function addRemoteCandidate(p) {
  const a = getAgent(p);
  if (!a.remote) throw new RpcError(-32000, "set_remote first");
  if (p.candidate === null || p.candidate === undefined || p.candidate === "") {
    if (a.remoteApplied) {
      throw new RpcError(
        -32601,
        "node-datachannel has no API for end-of-candidates once the remote description is applied",
      );
    }
    a.remote.ended = true;
    return {};
  }
  const v = acceptRemoteCandidate(p.candidate);
  if (!v) return {};
  if (a.remoteApplied) a.pc.addRemoteCandidate(v, MID);
  else a.remote.candidates.push(v);
  return {};
}

async function connect(p) {
  const a = getAgent(p);
  if (!a.localSet) throw new RpcError(-32000, "gather first");
  if (!a.remote) throw new RpcError(-32000, "set_remote first");
  if (!a.remoteApplied) applyRemote(a, "answer"); // controlling: the checks start here
  if (a.lastState === "new") emitState(a, "checking");
  const s = a.pc.iceState();
  if (s === "connected" || s === "completed") {
    emitSelectedPair(a);
    emitState(a, s);
  }
  return {};
}

function closeOne(a) {
  clearInterval(a.watch);
  try {
    if (a.dc) a.dc.close();
    a.pc.close();
  } catch (e) {
    log("close failed", e);
  }
}

async function closeAgent(p) {
  const a = getAgent(p);
  closeOne(a);
  emitState(a, "closed");
  agents.delete(a.id);
  return {};
}

async function closeAll() {
  for (const a of [...agents.values()]) {
    closeOne(a);
    agents.delete(a.id);
  }
  ndc.cleanup();
}

const METHODS = {
  initialize: async () => ({ name: NAME, version: VERSION, capabilities: CAPABILITIES, contract: CONTRACT }),
  create_agent: async (p) => createAgent(p),
  gather,
  set_remote: setRemote,
  add_remote_candidate: addRemoteCandidate,
  connect,
  close: closeAgent,
  shutdown: async () => {
    await closeAll();
    return {};
  },
  // send / restart / start_server / stop_server: not in the table, so -32601 (unsupported).
};

// ---------------------------------------------------------------- main loop

require("../_node/serve.js").serve({ methods: METHODS, closeAll, write, log, RpcError });
log(`ready (${VERSION}, libdatachannel ${ndc.getLibraryVersion ? ndc.getLibraryVersion() : "?"}, node ${process.version})`);
