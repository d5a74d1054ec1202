"use strict";
// The shared stdio shim (docs/adapter-contract.md, contract 1.2) for the real browsers, Chromium and Firefox ESR, driven
// through puppeteer-core with executablePath set to the Debian binary.
//
// Theory of operation: one browser process per shim (launched at `initialize`, closed at `shutdown`), one fresh
// page per agent. A tiny HTTP server on 127.0.0.1 serves the page: about:blank and data: URLs have no
// navigator.mediaDevices. Each page first holds a granted getUserMedia({audio: true}) stream from the fake
// device (without a media permission both browsers gather only on the default-route address, and a
// loopback-only namespace has none), then runs the agent of conformance/adapters/_node/browser-page.js.
// Requests are checked here (loopback-only servers and candidates) and forwarded with page.evaluate; the page's
// events come back through an exposed function and become notifications.
// The shim must run inside a loopback-only network namespace (`unshare -n`, see conformance/adapters/node.py):
// the browsers try to reach update and time servers at start-up.
"use strict";

for (const m of ["log", "info", "debug", "trace", "dir"]) {
  console[m] = (...args) => console.error(...args);
}

const fs = require("fs");
const http = require("http");
const net = require("net");
const path = require("path");
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
} = require("./common.js");

const CONTRACT = "1.2";
// Inside the interop command's own network namespace (docs/interop.md) a Chromium side lives on a routable private
// address (10.0.0.0/8, on a veth pair that exists only in that namespace), because Chromium never gathers on a
// loopback address other than 127.0.0.1. Everywhere else the shim stays loopback-only.
const IN_RUN_NETNS = process.env.ICE_CONFORMANCE_INTEROP_NETNS === "1";
const RUN_NETNS_PRIVATE = new net.BlockList();
RUN_NETNS_PRIVATE.addSubnet("10.0.0.0", 8, "ipv4");
const inRunNetns = (addr) => IN_RUN_NETNS && net.isIPv4(addr) && RUN_NETNS_PRIVATE.check(addr, "ipv4");
const CLOSE_GRACE_MS = 1200;
const PAGE_JS = fs.readFileSync(path.join(__dirname, "browser-page.js"), "utf8");
const INDEX = '<!doctype html><meta charset="utf-8"><title>ice-conformance</title><script src="/agent.js"></script>';

const KINDS = {
  chromium: {
    executable: process.env.ICE_CONFORMANCE_CHROMIUM || "/usr/bin/chromium",
    options: () => ({
      browser: "chrome",
      headless: true,
      args: [
        "--headless=new",
        "--no-sandbox",
        "--allow-loopback-in-peer-connection",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    }),
  },
  firefox: {
    executable: process.env.ICE_CONFORMANCE_FIREFOX || "/usr/bin/firefox-esr",
    options: () => ({
      browser: "firefox",
      protocol: "webDriverBiDi",
      headless: true,
      extraPrefsFirefox: {
        "media.peerconnection.ice.loopback": true,
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        "media.navigator.permission.disabled": true,
        "media.navigator.streams.fake": true,
        "media.navigator.permission.fake": true,
        "network.captive-portal-service.enabled": false,
        "network.connectivity-service.enabled": false,
        "app.update.enabled": false,
        "datareporting.healthreport.uploadEnabled": false,
        "toolkit.telemetry.enabled": false,
      },
    }),
  },
};

function main(kind, folder) {
  const cfg = KINDS[kind];
  const NAME = kind;
  const CAPABILITIES = require("./common.js").declaredCapabilities(folder);
  const log = (...args) => console.error(`[${NAME}-shim]`, ...args);
  const puppeteer = require("puppeteer-core");

  let browser = null;
  let server = null;
  let baseUrl = null;
  const agents = new Map(); // id -> {id, page, role, trickle, remoteSet, localSet, closed}
  let nextAgent = 1;

  function startServer() {
    return new Promise((resolve, reject) => {
      const s = http.createServer((req, res) => {
        if (req.url === "/agent.js") {
          res.writeHead(200, { "content-type": "text/javascript" });
          res.end(PAGE_JS);
        } else {
          res.writeHead(200, { "content-type": "text/html" });
          res.end(INDEX);
        }
      });
      s.on("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    });
  }

  async function initialize() {
    if (!fs.existsSync(cfg.executable)) {
      throw new RpcError(-32000, `${kind} not found at ${cfg.executable} (Debian: apt-get install ${kind === "firefox" ? "firefox-esr" : "chromium"})`);
    }
    if (!server) {
      server = await startServer();
      baseUrl = `http://127.0.0.1:${server.address().port}/`;
    }
    if (!browser) {
      const t0 = Date.now();
      browser = await puppeteer.launch({ executablePath: cfg.executable, ...cfg.options() });
      browser.on("disconnected", () => {
        if (!shuttingDown) {
          log("the browser process went away");
          for (const a of agents.values()) if (!a.closed) notify("state", { agent: a.id, state: "failed" });
          process.exit(3);
        }
      });
      log(`launched ${await browser.version()} in ${Date.now() - t0} ms`);
    }
    return { name: NAME, version: await browser.version(), capabilities: CAPABILITIES, contract: CONTRACT };
  }

  function getAgent(params) {
    const a = agents.get(params && params.agent);
    if (!a) throw new RpcError(-32001, `unknown agent ${JSON.stringify(params && params.agent)}`);
    return a;
  }

  async function call(a, fn, arg) {
    try {
      return await a.page.evaluate((f, x) => window.iceShim[f](x), fn, arg === undefined ? null : arg);
    } catch (e) {
      const msg = String((e && e.message) || e);
      throw new RpcError(-32000, `${kind} refused ${fn}: ${msg.split("\n")[0]}`);
    }
  }

  function turnUrl(t) {
    const { host, port, transport } = parseTurnUri(t.uri);
    const h = net.isIPv6(host) ? `[${host}]` : host;
    const scheme = transport === "tls" ? "turns" : "turn";
    const q = transport === "tls" ? "?transport=tcp" : `?transport=${transport}`;
    return { urls: `${scheme}:${h}:${port}${q}`, username: String(t.username), credential: String(t.password) };
  }

  // A new tab for an agent. Firefox's WebDriver BiDi browsingContext.create sometimes finds no browser window as its
  // top window ("lazy.TabManager.getTabBrowser(...) is undefined"; seen on a loaded machine, and once it starts every
  // later tab is refused). A new top-level window does not need one: the agent gets a window instead of a tab.
  const NO_TOP_WINDOW = /getTabBrowser\(\.\.\.\) is undefined/;
  async function newPage() {
    try {
      return await browser.newPage();
    } catch (e) {
      const msg = String((e && e.message) || e);
      if (!NO_TOP_WINDOW.test(msg)) throw e;
      log(`new tab refused: ${msg.split("\n")[0]}; opening a new window instead`);
      return browser.newPage({ type: "window" });
    }
  }

  async function createAgent(p) {
    if (!browser) throw new RpcError(-32000, "initialize first");
    const role = p.role;
    if (role !== "controlling" && role !== "controlled") throw invalidParams(`bad role ${JSON.stringify(role)}`);
    const components = p.components === undefined ? 1 : Number(p.components);
    if (components !== 1) throw invalidParams(`${kind} bundles everything on one component (rtcp-mux)`);
    if ((p.ufrag !== undefined || p.pwd !== undefined) && !CAPABILITIES.includes("set_credentials")) {
      throw invalidParams(`${kind} does not accept chosen ICE credentials (no set_credentials capability)`);
    }
    const interfaces = (p.interfaces && p.interfaces.length ? p.interfaces : ["127.0.0.1"]).map((i) =>
      inRunNetns(i) ? i : requireLoopback(i, "interface"),
    );
    const iceServers = [];
    for (const s of p.stun_servers || []) {
      const [host, port] = parseHostPort(s, "STUN server");
      iceServers.push({ urls: `stun:${net.isIPv6(host) ? `[${host}]` : host}:${port}` });
    }
    for (const t of p.turn_servers || []) iceServers.push(turnUrl(t));
    if (p.relay_only && !(p.turn_servers || []).length) throw invalidParams("relay_only needs a TURN server");
    const id = `a${nextAgent++}`;
    const page = await newPage();
    const a = { id, page, role, trickle: Boolean(p.trickle), remoteSet: false, remoteApplied: false, localSet: false, closed: false };
    page.on("pageerror", (e) => log(`${id} page error:`, e && e.message));
    await page.exposeFunction("__iceNotify", (json) => {
      const { method, params } = JSON.parse(json);
      if (method === "_log") log(`${id}:`, params.text);
      else if (!a.closed || method === "state") notify(method, params);
    });
    await page.goto(baseUrl);
    try {
      await page.evaluate(() => window.iceShim.init());
    } catch (e) {
      await page.close().catch(() => {});
      throw new RpcError(-32000, `${kind}: getUserMedia (fake device) failed: ${String((e && e.message) || e).split("\n")[0]}`);
    }
    await call(a, "create", {
      id,
      role,
      interfaces,
      iceServers,
      relayOnly: Boolean(p.relay_only),
      trickle: a.trickle,
      ufrag: p.ufrag === undefined ? null : String(p.ufrag),
      pwd: p.pwd === undefined ? null : String(p.pwd),
    });
    agents.set(id, a);
    return { agent: id };
  }

  async function gather(p) {
    const a = getAgent(p);
    if (a.role === "controlled" && !a.remoteSet) {
      throw new RpcError(-32000, `${kind} (controlled) is the SDP answerer: call set_remote before gather`);
    }
    const r = await call(a, "gather");
    a.localSet = true;
    if (a.role === "controlled") a.remoteApplied = true;
    return r;
  }

  const acceptRemoteCandidate = (cand) => {
    const value = "candidate:" + stripCandidate(cand);
    const f = value.split(/\s+/);
    return f.length >= 8 && inRunNetns(f[4]) ? value : acceptLoopbackCandidate(cand, log);
  };

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
    await call(a, "setRemote", { ufrag: p.ufrag, pwd: p.pwd, lite: Boolean(p.lite), candidates, iceOptions });
    a.remoteSet = true;
    // The page writes the same remote SDP as the libwebrtc shim: a=ice-options, c=IN IP4 0.0.0.0, m= port 9.
    return { applied_options: appliedOptions(p.options) };
  }

  async function addRemoteCandidate(p) {
    const a = getAgent(p);
    if (!a.remoteSet) throw new RpcError(-32000, "set_remote first");
    const end = p.candidate === null || p.candidate === undefined || p.candidate === "";
    if (end) return call(a, "addRemote", { candidate: null });
    const v = acceptRemoteCandidate(p.candidate);
    if (!v) return {};
    return call(a, "addRemote", { candidate: v });
  }

  async function connect(p) {
    const a = getAgent(p);
    if (!a.localSet) throw new RpcError(-32000, "gather first");
    if (!a.remoteSet) throw new RpcError(-32000, "set_remote first");
    await call(a, "connect");
    a.remoteApplied = true;
    return {};
  }

  async function closeOne(a) {
    if (a.closed) return;
    try {
      await a.page.evaluate(() => window.iceShim.close());
    } catch (e) {
      log("close failed", e && e.message);
    }
    a.closed = true;
    await a.page.close().catch((e) => log("page close failed", e && e.message));
  }

  async function closeAgent(p) {
    const a = getAgent(p);
    await closeOne(a);
    notify("state", { agent: a.id, state: "closed" });
    agents.delete(a.id);
    return {};
  }

  let shuttingDown = false;
  async function closeAll() {
    shuttingDown = true;
    for (const a of [...agents.values()]) {
      await closeOne(a);
      agents.delete(a.id);
    }
    if (browser) {
      // A graceful close can take seconds (Firefox over BiDi); the harness waits about 2 s for shutdown.
      const proc = browser.process();
      const closed = browser.close().catch((e) => log("browser close failed", e && e.message));
      await Promise.race([closed, new Promise((r) => setTimeout(r, CLOSE_GRACE_MS))]);
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        log(`the browser did not close within ${CLOSE_GRACE_MS} ms: killing it`);
        proc.kill("SIGKILL");
      }
    }
    browser = null;
    if (server) server.close();
    server = null;
  }

  const METHODS = {
    initialize,
    create_agent: createAgent,
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

  require("./serve.js").serve({ methods: METHODS, closeAll, write, log, RpcError });
  log(`ready (puppeteer-core ${require("puppeteer-core/package.json").version}, node ${process.version})`);
}

module.exports = { main };
