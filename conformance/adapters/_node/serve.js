"use strict";
// The JSON-RPC 2.0 loop the Node shims share (docs/adapter-contract.md): one JSON object per line on stdin,
// one per line on stdout; requests handled one after another in arrival order (one FIFO for the whole shim),
// so a client that pipelines requests sees the same effects as one that waits for each answer.

const readline = require("readline");

function serve({ methods, closeAll, write, log, RpcError }) {
  function reply(id, result, error) {
    if (id === undefined) return; // a notification from the harness: no reply
    if (error) write({ jsonrpc: "2.0", id, error });
    else write({ jsonrpc: "2.0", id, result });
  }

  async function handle(line) {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      write({ jsonrpc: "2.0", id: null, error: { code: -32700, message: `parse error: ${e.message}` } });
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg) || typeof msg.method !== "string") {
      const id = msg && typeof msg === "object" && "id" in msg ? msg.id : null;
      write({ jsonrpc: "2.0", id, error: { code: -32600, message: "invalid request" } });
      return;
    }
    const fn = Object.prototype.hasOwnProperty.call(methods, msg.method) ? methods[msg.method] : null;
    if (!fn) {
      reply(msg.id, null, { code: -32601, message: `method not found: ${msg.method}` });
      return;
    }
    try {
      const result = await fn(msg.params || {});
      if (msg.method === "shutdown") {
        if (msg.id !== undefined) {
          process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: msg.id, result }) + "\n", () => process.exit(0));
        } else {
          process.exit(0);
        }
        return;
      }
      reply(msg.id, result);
    } catch (e) {
      if (e instanceof RpcError) {
        reply(msg.id, null, { code: e.code, message: e.message, data: e.data });
      } else {
        log(`${msg.method} failed:`, e);
        reply(msg.id, null, { code: -32603, message: String((e && e.message) || e) });
      }
    }
  }

  process.on("unhandledRejection", (e) => log("unhandled rejection:", e));
  process.on("uncaughtException", (e) => log("uncaught exception:", e));

  // Only `connect` starts work that outlives its request; its outcome arrives as notifications.
  let tail = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    tail = tail.then(() => handle(line));
  });
  rl.on("close", () => {
    // stdin closed (the harness went away): finish what was asked, then clean up and leave.
    tail.then(closeAll).finally(() => process.exit(0));
  });
}

module.exports = { serve };
