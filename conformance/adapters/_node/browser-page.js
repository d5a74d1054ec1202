"use strict";
// The agent side of the browser shims (conformance/adapters/_node/browser.js), run INSIDE the browser page.
// One page holds one agent: an RTCPeerConnection with one data channel (the m=application section), driven by
// SDP as in conformance/adapters/libwebrtc/shim.js. The harness side becomes a hand-written remote description
// (dummy fingerprint, a=setup:active: the harness is the DTLS client, so the browser never sends DTLS first).
// Events go back to Node through window.__iceNotify (exposed by browser.js).
(function () {
  const FP = Array(32).fill("AB").join(":");
  const POLL_MS = 50;
  const POLL_LIMIT = 200;
  const PAIR_WATCH_MS = 100; // getStats() cadence for a change of the selected pair where no event tells it
  let stream = null; // the granted fake getUserMedia stream: without it no loopback candidate is gathered
  let a = null;

  function notify(method, params) {
    window.__iceNotify(JSON.stringify({ method, params }));
  }
  function log(...args) {
    notify("_log", { text: args.map(String).join(" ") });
  }

  function emitState(state) {
    if (a.lastState === state) return;
    a.lastState = state;
    notify("state", { agent: a.id, state });
  }

  function candFields(value) {
    const p = value.split(/\s+/);
    return { transport: (p[2] || "").toLowerCase(), address: p[4], port: Number(p[5]), type: p[7] };
  }

  function isLoopback(addr) {
    return /^127\./.test(addr) || addr === "::1";
  }

  // Host candidates only on the requested interfaces; relayed/reflexive ones when their addresses are loopback
  // and their base is loopback or a requested interface.
  function reportable(value) {
    const f = candFields(value);
    if (f.type === "host") return a.interfaces.includes(f.address);
    const m = /\sraddr\s(\S+)/.exec(value);
    if (f.type === "relay") return isLoopback(f.address);
    const base = m && m[1];
    return isLoopback(f.address) && (!base || isLoopback(base) || a.interfaces.includes(base) || base === "0.0.0.0" || base === "::");
  }

  function statsCandidate(s, known) {
    const proto = String(s.protocol || "udp").toLowerCase();
    const addr = s.address || s.ip || "0.0.0.0";
    const port = s.port || s.portNumber;
    for (const k of known) {
      const f = candFields(k);
      if (f.address === addr && f.port === port && f.transport === proto) return k;
    }
    const map = { "peer-reflexive": "prflx", prflx: "prflx", serverreflexive: "srflx", "server-reflexive": "srflx",
      srflx: "srflx", relayed: "relay", relay: "relay", host: "host" };
    const type = map[s.candidateType] || "host";
    let out = `candidate:${s.foundation || "0"} 1 ${proto} ${s.priority || 0} ${addr} ${port} typ ${type}`;
    if (s.relatedAddress) out += ` raddr ${s.relatedAddress} rport ${s.relatedPort}`;
    return out;
  }

  async function selectedPair() {
    const report = await a.pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let pairId = null;
    for (const s of byId.values()) {
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    }
    if (!pairId) {
      for (const s of byId.values()) if (s.type === "candidate-pair" && s.selected) pairId = s.id;
    }
    // A nominated Succeeded pair stands for the selected one for the first report only: a later report must be
    // the pair the browser selected, not merely another nominated pair.
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
    return { local: statsCandidate(l, a.localCandidates), remote: statsCandidate(r, a.remote ? a.remote.candidates : []) };
  }

  // The browser says connected but no pair in getStats is selected, or its candidates are missing: log what is there.
  async function logPairs() {
    try {
      const report = await a.pc.getStats();
      const lines = [];
      report.forEach((s) => {
        if (s.type === "transport") lines.push(`transport selectedCandidatePairId=${s.selectedCandidatePairId}`);
        if (s.type === "candidate-pair") {
          const has = (id) => (report.has(id) ? "" : " (missing)");
          lines.push(`pair ${s.id} state=${s.state} nominated=${s.nominated} selected=${s.selected} ` +
            `local=${s.localCandidateId}${has(s.localCandidateId)} remote=${s.remoteCandidateId}${has(s.remoteCandidateId)}`);
        }
      });
      log(`${a.pc.iceConnectionState} without a selected pair in getStats after ${POLL_LIMIT * POLL_MS} ms:`, lines.join("; "));
    } catch (e) {
      log("getStats failed", e);
    }
  }

  function reportPair(pair) {
    const key = pair.local + "|" + pair.remote;
    if (a.lastPair === key) return;
    if (a.lastPair !== null) log(`selected pair changed from ${a.lastPair} to ${key}`);
    a.lastPair = key;
    notify("selected_pair", { agent: a.id, component: 1, local: pair.local, remote: pair.remote });
  }

  // One read of the selected pair. Reads may overlap: `newest` says no later read began meanwhile, so only the
  // newest answer is reported.
  async function readPair() {
    const seq = ++a.readSeq;
    let pair = null;
    try {
      pair = await selectedPair();
    } catch (e) {
      log("getStats failed", e);
    }
    return { pair, newest: seq === a.readSeq };
  }

  // Read the selected pair again, for a change.
  async function rereadPair() {
    const { pair, newest } = await readPair();
    if (!a.closed && newest && pair) reportPair(pair);
  }

  // After the first report the pair may still change with no ICE state change (a controlled agent moving to a
  // higher-priority nomination), and the contract asks a selected_pair for every change: read getStats every
  // PAIR_WATCH_MS until the agent fails or closes. Chromium's RTCIceTransport also fires selectedcandidatepairchange;
  // it only brings the next read forward, as Chromium serves getStats from a cache (50 ms) that can still hold the
  // old pair: the interval, longer than the cache, is what makes the last report the pair in use.
  function watchPair() {
    if (a.watching) return;
    a.watching = true;
    const t = a.pc.sctp && a.pc.sctp.transport && a.pc.sctp.transport.iceTransport;
    const event = Boolean(t && "onselectedcandidatepairchange" in t);
    if (event) {
      t.addEventListener("selectedcandidatepairchange", () => {
        if (!a.closed) rereadPair();
      });
    }
    log(`watching the selected pair: getStats every ${PAIR_WATCH_MS} ms${event ? " and on selectedcandidatepairchange" : ""}`);
    a.watchTimer = setInterval(() => {
      const s = a.pc.iceConnectionState;
      if (a.closed || s === "failed" || s === "closed") {
        clearInterval(a.watchTimer);
        return;
      }
      rereadPair();
    }, PAIR_WATCH_MS);
  }

  function pollSelectedPair() {
    const run = ++a.pollRun;
    let n = 0;
    const tick = async () => {
      if (run !== a.pollRun || a.closed) return;
      const { pair, newest } = await readPair();
      if (run !== a.pollRun || a.closed) return;
      if (pair) {
        if (newest) reportPair(pair);
        const s = a.pc.iceConnectionState;
        if (s === "connected" || s === "completed") {
          emitState(s);
          watchPair();
        }
        return;
      }
      if (++n < POLL_LIMIT) a.pollTimer = setTimeout(tick, POLL_MS);
      else if (["connected", "completed"].includes(a.pc.iceConnectionState)) logPairs();
    };
    clearTimeout(a.pollTimer);
    tick();
  }

  async function init() {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    return { tracks: stream.getTracks().length };
  }

  function create(p) {
    const pc = new RTCPeerConnection({
      iceServers: p.iceServers,
      iceTransportPolicy: p.relayOnly ? "relay" : "all",
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    a = {
      id: p.id,
      pc,
      role: p.role,
      interfaces: p.interfaces,
      trickle: p.trickle,
      ufrag: p.ufrag === null ? undefined : p.ufrag,
      pwd: p.pwd === null ? undefined : p.pwd,
      localCandidates: [],
      remote: null,
      remoteApplied: false,
      localSet: false,
      lastState: "new",
      lastPair: null,
      pollRun: 0,
      pollTimer: null,
      readSeq: 0,
      watching: false,
      watchTimer: null,
      closed: false,
      mid: "0",
      gatherStarted: false,
      gatherFinished: false,
    };
    let gatherResolve;
    a.gatherDone = new Promise((r) => (gatherResolve = r));
    const finishGather = () => {
      if (a.gatherFinished || !a.gatherStarted) return;
      a.gatherFinished = true;
      gatherResolve();
      if (a.trickle && !a.closed) notify("candidate", { agent: a.id, candidate: null });
    };
    pc.onicecandidate = (ev) => {
      if (a.closed) return;
      const c = ev.candidate && ev.candidate.candidate;
      if (!c) {
        finishGather();
        return;
      }
      const value = "candidate:" + String(c).replace(/^a=/, "").replace(/^candidate:/, "");
      if (!reportable(value)) {
        log("not reporting candidate outside the requested loopback interfaces:", value);
        return;
      }
      a.localCandidates.push(value);
      if (a.trickle) notify("candidate", { agent: a.id, candidate: value });
    };
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === "complete") finishGather();
    };
    pc.oniceconnectionstatechange = () => {
      if (a.closed) return;
      const s = pc.iceConnectionState;
      log(`iceConnectionState ${s}`);
      if (s === "new") return;
      if (s === "connected" || s === "completed") {
        pollSelectedPair();
        return;
      }
      if (s === "checking") pollSelectedPair();
      emitState(s);
    };
    a.dc = pc.createDataChannel("ice-conformance");
    return {};
  }

  function munge(sdp) {
    let out = sdp;
    if (a.ufrag !== undefined) out = out.replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${a.ufrag}`);
    if (a.pwd !== undefined) out = out.replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${a.pwd}`);
    return out;
  }

  function remoteSdp() {
    const r = a.remote;
    const out = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"];
    if (r.lite) out.push("a=ice-lite");
    out.push(
      `a=group:BUNDLE ${a.mid}`,
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "c=IN IP4 0.0.0.0",
      `a=ice-ufrag:${r.ufrag}`,
      `a=ice-pwd:${r.pwd}`,
    );
    if (r.iceOptions) out.push(r.iceOptions);
    out.push(`a=fingerprint:sha-256 ${FP}`, "a=setup:active", `a=mid:${a.mid}`, "a=sctp-port:5000",
      "a=max-message-size:262144");
    for (const c of r.candidates) out.push("a=" + c);
    if (r.ended) out.push("a=end-of-candidates");
    return out.join("\r\n") + "\r\n";
  }

  async function applyRemote(type) {
    const sdp = remoteSdp();
    log(`remote ${type} (the harness side):\n${sdp.trimEnd()}`);
    await a.pc.setRemoteDescription({ type, sdp });
    a.remoteApplied = true;
  }

  async function gather() {
    if (!a.localSet) {
      let desc;
      if (a.role === "controlling") {
        desc = await a.pc.createOffer();
        const m = /^a=mid:(\S+)/m.exec(desc.sdp);
        if (m) a.mid = m[1];
      } else {
        await applyRemote("offer");
        desc = await a.pc.createAnswer();
      }
      a.gatherStarted = true;
      await a.pc.setLocalDescription({ type: desc.type, sdp: munge(desc.sdp) });
      a.localSet = true;
      if (a.pc.iceGatheringState === "complete" && !a.gatherFinished) {
        a.gatherFinished = true; // (already complete before we listened)
      }
    }
    if (!a.trickle && !a.gatherFinished) await a.gatherDone;
    const sdp = a.pc.localDescription ? a.pc.localDescription.sdp : "";
    const get = (k) => {
      const m = new RegExp(`^a=${k}:(.*)$`, "m").exec(sdp);
      return m ? m[1].trim() : "";
    };
    return { ufrag: get("ice-ufrag"), pwd: get("ice-pwd"), candidates: a.trickle ? [] : [...a.localCandidates] };
  }

  function setRemote(p) {
    a.remote = { ufrag: p.ufrag, pwd: p.pwd, lite: p.lite, candidates: p.candidates, ended: !a.trickle,
      iceOptions: p.iceOptions };
    return {};
  }

  async function addRemote(p) {
    if (p.candidate === null) {
      if (!a.remoteApplied) a.remote.ended = true;
      else await a.pc.addIceCandidate({ candidate: "", sdpMid: a.mid, sdpMLineIndex: 0 });
      return {};
    }
    a.remote.candidates.push(p.candidate);
    if (a.remoteApplied) await a.pc.addIceCandidate({ candidate: p.candidate, sdpMid: a.mid, sdpMLineIndex: 0 });
    return {};
  }

  async function connect() {
    if (!a.remoteApplied) await applyRemote("answer"); // controlling: the checks start here
    if (a.pc.iceConnectionState === "new") emitState("checking");
    pollSelectedPair();
    return {};
  }

  function close() {
    if (!a || a.closed) return {};
    a.closed = true;
    a.pollRun++;
    clearTimeout(a.pollTimer);
    clearInterval(a.watchTimer);
    try {
      if (a.dc) a.dc.close();
      a.pc.close();
    } catch (e) {
      log("close failed", e);
    }
    return {};
  }

  const state = () => ({ remote: Boolean(a && a.remote), localSet: Boolean(a && a.localSet),
    remoteApplied: Boolean(a && a.remoteApplied) });

  window.iceShim = { init, create, gather, setRemote, addRemote, connect, close, state };
})();
