#!/usr/bin/env node
// ice-conformance stdio shim for libwebrtc's ICE, through @roamhq/wrtc 0.10.0 (adapter contract 1.0).
//
// Theory of operation: JSON-RPC 2.0, one object per line, requests on stdin, responses and
// notifications on stdout; everything else goes to stderr. libwebrtc exposes ICE only through an
// RTCPeerConnection and SDP, so each agent is one RTCPeerConnection with one data channel (for the
// m=application section) and the harness side becomes a hand-written remote SDP (dummy fingerprint,
// a=setup:active, so the harness is the DTLS client and libwebrtc never sends DTLS first; DTLS never
// completing is expected, the ICE layer is what is tested):
//   * controlling = the offerer: `gather` creates the offer, munges a=ice-ufrag/a=ice-pwd when chosen
//     credentials are given, and sets it; `set_remote` stores the harness side; `connect` applies it as
//     the remote ANSWER, which starts the checks.
//   * controlled = the answerer: `set_remote` must come BEFORE `gather` (the answer needs the offer);
//     `gather` applies the remote OFFER and sets the (munged) local answer; checks start at once.
// States come from oniceconnectionstatechange; the selected pair from getStats() (transport
// selectedCandidatePairId): polled until first known (bounded), then watched while the agent is
// connected, as wrtc has no selectedcandidatepairchange event (a controlled libwebrtc moves to a
// nominated pair with no state change) and the contract asks a selected_pair for every change.
// Refused (-32601): `send` (libwebrtc exposes no ICE-level datagrams; a data channel needs DTLS+SCTP,
// which the harness peer does not speak), `restart` (not wired yet), more than one component.
// Loopback only: only loopback candidates of the requested `interfaces` are reported; server
// addresses and remote candidates must be loopback literals (others are refused or dropped and logged).
// libwebrtc itself has no bind-address option, so outside a private netns it still gathers on the
// other interfaces; it only ever sends to the loopback remote candidates and servers it is given.
"use strict";

for (const m of ["log", "info", "debug", "trace", "dir"]) {
  console[m] = (...args) => console.error(...args);
}

const net = require("net");
const wrtc = require("@roamhq/wrtc");

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

const NAME = "libwebrtc";
const VERSION = `@roamhq/wrtc ${packageVersion("@roamhq/wrtc")}`;
const CONTRACT = "1.2";
const CAPABILITIES = require("../_node/common.js").declaredCapabilities(__dirname);

const {
  RpcError,
  appliedOptions,
  iceOptionsLine,
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
const MID = "0";
const DUMMY_FINGERPRINT = Array(32).fill("AB").join(":");
const POLL_MS = 50; // getStats() cadence while connecting
const POLL_LIMIT = 200; // at most 10 s of polling per state change
const PAIR_WATCH_MS = 100; // getStats() cadence, once the pair is known, for a change of the selected pair
const WATCH_STATES = new Set(["connected", "completed", "disconnected"]); // the pair can still change

function getAgent(params) {
  const a = agents.get(params && params.agent);
  if (!a) throw new RpcError(-32001, `unknown agent ${JSON.stringify(params && params.agent)}`);
  return a;
}

function emitState(a, state) {
  if (a.lastState === state) return;
  a.lastState = state;
  notify("state", { agent: a.id, state });
}

function candFields(value) {
  const p = value.split(/\s+/);
  return { transport: (p[2] || "").toLowerCase(), address: p[4], port: Number(p[5]), type: p[7] };
}

// A candidate from getStats() as an RFC 8839 attribute value: the string we saw when we know it.
function statsCandidate(s, known) {
  const proto = String(s.protocol || "udp").toLowerCase();
  // libwebrtc redacts the address of a peer-reflexive remote candidate in its stats: 0.0.0.0 then.
  const addr = s.address || s.ip || "0.0.0.0";
  for (const k of known) {
    const f = candFields(k);
    if (f.address === addr && f.port === s.port && f.transport === proto) return k;
  }
  const type = s.candidateType === "peer-reflexive" ? "prflx" : s.candidateType || "host";
  let out = `candidate:${s.foundation || "0"} 1 ${proto} ${s.priority || 0} ${addr} ${s.port} typ ${type}`;
  if (s.relatedAddress) out += ` raddr ${s.relatedAddress} rport ${s.relatedPort}`;
  return out;
}

async function selectedPair(a) {
  const report = await a.pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let pairId = null;
  for (const s of byId.values()) {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  }
  // Without the transport's id, a nominated Succeeded pair stands for it, for the first report only: a later
  // one must be the pair libwebrtc selected, not merely another nominated pair.
  if (!pairId && a.lastPair === null) {
    for (const s of byId.values()) {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pairId = s.id;
    }
  }
  const pair = pairId && byId.get(pairId);
  if (!pair) return null;
  const l = byId.get(pair.localCandidateId);
  const r = byId.get(pair.remoteCandidateId);
  if (!l || !r) return null;
  return {
    local: statsCandidate(l, a.localCandidates),
    remote: statsCandidate(r, a.remote ? a.remote.candidates : []),
  };
}

// Poll getStats() until the selected pair is known (bounded), report it, then keep reading it every
// PAIR_WATCH_MS while the agent may still move to another pair (stops on failed/closed), reporting each change.
function pollSelectedPair(a) {
  const run = ++a.pollRun;
  let n = 0;
  const tick = async () => {
    if (run !== a.pollRun || !agents.has(a.id) || a.closed) return;
    let pair = null;
    try {
      pair = await selectedPair(a);
    } catch (e) {
      log("getStats failed", e);
    }
    if (run !== a.pollRun || !agents.has(a.id) || a.closed) return;
    const s = a.pc.iceConnectionState;
    if (pair) {
      const key = pair.local + "|" + pair.remote;
      if (a.lastPair !== key) {
        if (a.lastPair !== null) log(`${a.id}: selected pair changed from ${a.lastPair} to ${key}`);
        a.lastPair = key;
        notify("selected_pair", { agent: a.id, component: 1, local: pair.local, remote: pair.remote });
      }
      if (s === "connected" || s === "completed") emitState(a, s);
      if (WATCH_STATES.has(s)) a.pollTimer = setTimeout(tick, PAIR_WATCH_MS);
      return;
    }
    if (++n < POLL_LIMIT) a.pollTimer = setTimeout(tick, POLL_MS);
  };
  clearTimeout(a.pollTimer);
  tick();
}

function turnUrl(t) {
  const { host, port, transport } = parseTurnUri(t.uri);
  const h = net.isIPv6(host) ? `[${host}]` : host;
  const scheme = transport === "tls" ? "turns" : "turn";
  const q = transport === "tls" ? "?transport=tcp" : `?transport=${transport}`;
  return { urls: `${scheme}:${h}:${port}${q}`, username: String(t.username), credential: String(t.password) };
}

function createAgent(p) {
  const role = p.role;
  if (role !== "controlling" && role !== "controlled") throw invalidParams(`bad role ${JSON.stringify(role)}`);
  const components = p.components === undefined ? 1 : Number(p.components);
  if (components !== 1) throw invalidParams("libwebrtc bundles everything on one component (rtcp-mux)");
  const interfaces = (p.interfaces && p.interfaces.length ? p.interfaces : ["127.0.0.1"]).map((i) =>
    requireLoopback(i, "interface"),
  );
  const iceServers = [];
  for (const s of p.stun_servers || []) {
    const [host, port] = parseHostPort(s, "STUN server");
    iceServers.push({ urls: `stun:${net.isIPv6(host) ? `[${host}]` : host}:${port}` });
  }
  for (const t of p.turn_servers || []) iceServers.push(turnUrl(t));
  if (p.relay_only && !(p.turn_servers || []).length) throw invalidParams("relay_only needs a TURN server");
  const pc = new wrtc.RTCPeerConnection({
    iceServers,
    iceTransportPolicy: p.relay_only ? "relay" : "all",
    bundlePolicy: "max-bundle",
    rtcpMuxPolicy: "require",
  });
  const id = `a${nextAgent++}`;
  const a = {
    id,
    pc,
    role,
    interfaces,
    relayOnly: Boolean(p.relay_only),
    trickle: Boolean(p.trickle),
    ufrag: p.ufrag === undefined ? undefined : String(p.ufrag),
    pwd: p.pwd === undefined ? undefined : String(p.pwd),
    localCandidates: [],
    remote: null, // {ufrag, pwd, lite, candidates, ended}
    remoteApplied: false,
    localSet: false,
    lastState: "new",
    lastPair: null,
    pollRun: 0,
    pollTimer: null,
    closed: false,
  };
  let gatherResolve;
  a.gatherDone = new Promise((r) => (gatherResolve = r));
  const finishGather = () => {
    clearTimeout(a.nullTimer);
    if (a.gatherFinished) return;
    a.gatherFinished = true;
    gatherResolve();
    if (a.trickle && agents.has(id)) notify("candidate", { agent: id, candidate: null });
  };
  pc.onicecandidate = (ev) => {
    if (!agents.has(id)) return;
    const c = ev.candidate && ev.candidate.candidate;
    if (!c) {
      // The answerer sees a stale null candidate (from applying the remote offer) before it has
      // gathered anything: believe a null only after a candidate, or after a grace period.
      if (!a.gatherStarted) return;
      if (!a.sawCandidate) {
        if (!a.nullTimer) a.nullTimer = setTimeout(() => finishGather(), 3000);
        return;
      }
      finishGather();
      return;
    }
    a.sawCandidate = true;
    const value = "candidate:" + stripCandidate(c);
    if (!reportable(a, value)) {
      log("not reporting candidate outside the requested loopback interfaces:", value);
      return;
    }
    a.localCandidates.push(value);
    if (a.trickle) notify("candidate", { agent: id, candidate: value });
  };
  // Only the null candidate marks the end: wrtc may fire a stale "complete" gathering state first.
  pc.oniceconnectionstatechange = () => {
    if (!agents.has(id)) return;
    const s = pc.iceConnectionState;
    if (s === "new") return;
    if (s === "connected" || s === "completed") {
      pollSelectedPair(a); // reports the pair, then the state
      return;
    }
    if (s === "checking") pollSelectedPair(a);
    emitState(a, s);
  };
  a.dc = pc.createDataChannel("ice-conformance");
  agents.set(id, a);
  return { agent: id };
}

// Host candidates only on the requested interfaces; relayed/reflexive ones when their base is one.
function reportable(a, value) {
  const f = candFields(value);
  if (f.type === "host") return a.interfaces.includes(f.address);
  const m = /\sraddr\s(\S+)/.exec(value);
  if (f.type === "relay") return isLoopback(f.address);
  return isLoopback(f.address) && (!m || isLoopback(m[1]));
}

function munge(sdp, ufrag, pwd) {
  let out = sdp;
  if (ufrag !== undefined) out = out.replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${ufrag}`);
  if (pwd !== undefined) out = out.replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${pwd}`);
  return out;
}

function remoteSdp(a) {
  const r = a.remote;
  const out = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"];
  if (r.lite) out.push("a=ice-lite");
  out.push(
    "a=group:BUNDLE 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${r.ufrag}`,
    `a=ice-pwd:${r.pwd}`,
  );
  if (r.iceOptions) out.push(r.iceOptions);
  out.push(
    `a=fingerprint:sha-256 ${DUMMY_FINGERPRINT}`,
    "a=setup:active",
    `a=mid:${MID}`,
    "a=sctp-port:5000",
    "a=max-message-size:262144",
  );
  for (const c of r.candidates) out.push("a=" + c);
  if (r.ended) out.push("a=end-of-candidates");
  return out.join("\r\n") + "\r\n";
}

function acceptRemoteCandidate(cand) {
  const value = "candidate:" + stripCandidate(cand);
  const f = candFields(value);
  if (!f.type) throw invalidParams(`bad candidate ${JSON.stringify(cand)}`);
  if (!isLoopback(f.address)) {
    log("dropping non-loopback remote candidate (shim is loopback-only):", cand);
    return null;
  }
  return value;
}

async function applyRemote(a, type) {
  const sdp = remoteSdp(a);
  log(`remote ${type} (the harness side):\n${sdp.trimEnd()}`);
  await a.pc.setRemoteDescription({ type, sdp });
  a.remoteApplied = true;
}

async function gather(p) {
  const a = getAgent(p);
  if (!a.localSet) {
    let desc;
    if (a.role === "controlling") {
      desc = await a.pc.createOffer();
    } else {
      if (!a.remote) {
        throw new RpcError(-32000, "libwebrtc (controlled) is the SDP answerer: call set_remote before gather");
      }
      await applyRemote(a, "offer");
      desc = await a.pc.createAnswer();
    }
    a.gatherStarted = true;
    await a.pc.setLocalDescription({ type: desc.type, sdp: munge(desc.sdp, a.ufrag, a.pwd) });
    a.localSet = true;
  }
  if (!a.trickle) await a.gatherDone;
  const sdp = a.pc.localDescription ? a.pc.localDescription.sdp : "";
  const get = (k) => {
    const m = new RegExp(`^a=${k}:(.*)$`, "m").exec(sdp);
    return m ? m[1].trim() : "";
  };
  return { ufrag: get("ice-ufrag"), pwd: get("ice-pwd"), candidates: a.trickle ? [] : [...a.localCandidates] };
}

async function setRemote(p) {
  const a = getAgent(p);
  if (typeof p.ufrag !== "string" || typeof p.pwd !== "string") throw invalidParams("ufrag and pwd are required");
  if (a.remoteApplied) throw new RpcError(-32000, "the remote description is already applied (ICE restart is not wired)");
  const candidates = [];
  for (const c of p.candidates || []) {
    const v = acceptRemoteCandidate(c);
    if (v) candidates.push(v);
  }
  const iceOptions = iceOptionsLine(p.options, a.trickle);
  a.remote = { ufrag: p.ufrag, pwd: p.pwd, lite: Boolean(p.lite), candidates, ended: !a.trickle, iceOptions };
  return { applied_options: appliedOptions(p.options) };
}

async function addRemoteCandidate(p) {
  const a = getAgent(p);
  if (!a.remote) throw new RpcError(-32000, "set_remote first");
  const end = p.candidate === null || p.candidate === undefined || p.candidate === "";
  if (end) {
    if (!a.remoteApplied) a.remote.ended = true;
    else await a.pc.addIceCandidate({ candidate: "", sdpMid: MID, sdpMLineIndex: 0 });
    return {};
  }
  const v = acceptRemoteCandidate(p.candidate);
  if (!v) return {};
  a.remote.candidates.push(v);
  if (a.remoteApplied) await a.pc.addIceCandidate({ candidate: v, sdpMid: MID, sdpMLineIndex: 0 });
  return {};
}

async function connect(p) {
  const a = getAgent(p);
  if (!a.localSet) throw new RpcError(-32000, "gather first");
  if (!a.remote) throw new RpcError(-32000, "set_remote first");
  if (!a.remoteApplied) await applyRemote(a, "answer"); // controlling: the checks start here
  const s = a.pc.iceConnectionState;
  if (s === "new") emitState(a, "checking");
  pollSelectedPair(a);
  return {};
}

function closeOne(a) {
  a.closed = true;
  a.pollRun++;
  clearTimeout(a.pollTimer);
  clearTimeout(a.nullTimer);
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
log(`ready (${VERSION}, node ${process.version})`);
