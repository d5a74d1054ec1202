#!/usr/bin/env node
// ice-conformance stdio shim for firefox's WebRTC ICE, through puppeteer-core (adapter contract 1.0).
// Everything is in conformance/adapters/_node/browser.js, shared with the other browser; this folder holds the
// pinned package.json / package-lock.json and iut.toml.
"use strict";
require("../_node/browser.js").main("firefox", __dirname);
