// Drives headless Chromium through the echo example's page, with the page's own controls.
//
// Run through scripts/browser.sh, which starts five echo servers and sets:
//   ECHO_URL       http://127.0.0.1:PORT of a server with the default options (compression off)
//   ECHO_LOG       that server's log file
//   REFUSING_URL   http://127.0.0.1:PORT of a server started with
//                  --allowed-origin https://somewhere.else (so it refuses its own page)
//   REFUSING_LOG   that server's log file (it logs at debug level)
//   TLS_URL        https://127.0.0.1:PORT of a server started with --tls (a self-signed
//                  certificate, ALPN h2 and http/1.1), opened in a second Chromium launched with
//                  --ignore-certificate-errors: its page's WebSocket must go over HTTP/2
//   TLS_LOG        that server's log file
//   DEFLATE_URL    http://127.0.0.1:PORT of a server started with --compression
//   DEFLATE_LOG    that server's log file
//   DEFLATE_TLS_URL, DEFLATE_TLS_LOG
//                  the same with --compression --tls (HTTP/2)
//   TOKEN, TOKEN_URL, TOKEN_LOG
//                  a server started with --token TOKEN (logging at debug level): its page
//                  connects with the token in the protocol list and in the query, and is refused
//                  (401) without it or with a wrong one; the token must never be in its log
//   SCREENSHOT     where to save a screenshot of the finished page
//   CHROMIUM       the browser (default /usr/bin/chromium)
//
// The compressing servers are reached through a TCP proxy here that counts the bytes each way,
// to check that Chromium and the server both compressed a large message.
//
// Prints one line per test and a final `N passed, M failed`; exits 1 when a test failed.

import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

import { check, required, results, test } from "./harness.mjs";

const ECHO_URL = required("ECHO_URL");
const ECHO_LOG = required("ECHO_LOG");
const REFUSING_URL = required("REFUSING_URL");
const REFUSING_LOG = required("REFUSING_LOG");
const TLS_URL = required("TLS_URL");
const TLS_LOG = required("TLS_LOG");
const DEFLATE_URL = required("DEFLATE_URL");
const DEFLATE_LOG = required("DEFLATE_LOG");
const DEFLATE_TLS_URL = required("DEFLATE_TLS_URL");
const DEFLATE_TLS_LOG = required("DEFLATE_TLS_LOG");
const TOKEN = required("TOKEN");
const TOKEN_URL = required("TOKEN_URL");
const TOKEN_LOG = required("TOKEN_LOG");
const SCREENSHOT = process.env.SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15_000;

const NON_ASCII = "привет 👋";
// 10 KB of text; distinct lines so that a truncated or reordered echo shows.
const TEN_KB = Array.from({ length: 160 }, (_, i) => `line ${String(i).padStart(3, "0")} `.padEnd(64, "."))
    .join("")
    .slice(0, 10 * 1024);
// 1 MiB of JSON chat messages: what compression is for (issue 11: such traffic shrinks 5–15×).
const JSON_MIB = (() => {
    const entries = [];
    let length = 2;
    for (let i = 0; length < 1024 * 1024; i += 1) {
        const entry = JSON.stringify({ id: i, user: `user${i % 37}`, room: "general", text: `message number ${i}` });
        entries.push(entry);
        length += entry.length + 1;
    }
    return `[${entries.join(",")}]`;
})();
// The page's log line when the socket opens without an extension.
const OPENED_PLAIN = "Connection opened. Extensions: none";

// The texts of the Communication Log rows of one kind (open, send, receive, close, error).
async function logTexts(page, kind) {
    return page.$$eval(`#commsLog tr.log-${kind} td.commslog-data .payload`, (cells) =>
        cells.map((cell) => cell.textContent),
    );
}

async function waitForLog(page, kind, text) {
    await page.waitForFunction(
        ([kind, text]) =>
            [...document.querySelectorAll(`#commsLog tr.log-${kind} td.commslog-data .payload`)].some(
                (cell) => cell.textContent === text,
            ),
        [kind, text],
        { timeout: TIMEOUT },
    );
}

async function waitForState(page, text) {
    await page.waitForFunction(
        (text) => document.getElementById("stateLabel").textContent === text,
        text,
        { timeout: TIMEOUT },
    );
}

async function sendThroughPage(page, message) {
    await page.fill("#sendMessage", message);
    await page.click("#sendButton");
    await waitForLog(page, "send", message);
    await waitForLog(page, "receive", message);
}

// A WebSocket handshake sent straight to the server, with the given Origin: the HTTP status.
function handshakeStatus(baseUrl, origin) {
    const url = new URL("/ws", baseUrl);
    return new Promise((resolve, reject) => {
        const request = http.request(url, {
            headers: {
                Connection: "Upgrade",
                Upgrade: "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                Origin: origin,
            },
            timeout: TIMEOUT,
        });
        request.on("response", (response) => {
            response.resume();
            resolve(response.statusCode);
        });
        request.on("upgrade", (response, socket) => {
            socket.destroy();
            resolve(response.statusCode);
        });
        request.on("timeout", () => request.destroy(new Error("timed out")));
        request.on("error", reject);
        request.end();
    });
}

// The lines of a server log that hold `message`, with what follows the message (the event's
// fields, such as `http=HTTP/2.0`), waiting up to TIMEOUT for `count` of them.
async function waitForServerLog(logFile, message, count = 1) {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
        const lines = readFileSync(logFile, "utf8")
            .split("\n")
            .filter((line) => line.includes(`: ${message}`));
        if (lines.length >= count) {
            return lines;
        }
        if (Date.now() > deadline) {
            throw new Error(`the server did not log \`${message}\` ${count} time(s) within ${TIMEOUT} ms`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

// The fields of a log line after its message, as `name=value` pairs (values without spaces).
function logFields(line, message) {
    const rest = line.slice(line.indexOf(`: ${message}`) + message.length + 2);
    return Object.fromEntries(
        rest
            .trim()
            .split(/\s+/)
            .map((pair) => pair.split("="))
            .filter((pair) => pair.length >= 2)
            .map(([name, ...value]) => [name, value.join("=")]),
    );
}

// The flags every Chromium here runs with.
const CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
];

// A headless Chromium with a fresh profile; `close()` closes it and removes the profile.
async function launch(extraFlags = []) {
    const userDataDir = mkdtempSync(join(tmpdir(), "echo-page-chromium-"));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [...CHROMIUM_FLAGS, ...extraFlags],
        viewport: { width: 1000, height: 760 },
        timeout: 60_000,
    });
    return {
        context,
        async close() {
            await context.close();
            rmSync(userDataDir, { recursive: true, force: true });
        },
    };
}

// The page over HTTPS (ALPN h2): the WebSocket must travel as an HTTP/2 extended CONNECT
// (RFC 8441) on the page's connection, which the server's log line for the socket shows.
async function tlsScenario(consoleLines) {
    const browser = await launch(["--ignore-certificate-errors"]);
    try {
        const page = browser.context.pages()[0] ?? (await browser.context.newPage());
        page.setDefaultTimeout(TIMEOUT);
        page.on("console", (message) => consoleLines.push(`[tls ${message.type()}] ${message.text()}`));
        page.on("pageerror", (error) => consoleLines.push(`[tls pageerror] ${error.message}`));
        // What Chromium says about the handshake: 101 over HTTP/1.1, 200 over HTTP/2.
        const handshakes = [];
        const cdp = await browser.context.newCDPSession(page);
        await cdp.send("Network.enable");
        cdp.on("Network.webSocketHandshakeResponseReceived", (event) => handshakes.push(event.response.status));

        await test("TLS: the page loads over HTTP/2 (ALPN h2)", async () => {
            const response = await page.goto(TLS_URL);
            check(response?.status() === 200, `GET / answered ${response?.status()}`);
            const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
            check(protocol === "h2", `the page came over ${protocol}, not h2`);
            const url = await page.inputValue("#connectionUrl");
            const expected = `wss://${new URL(TLS_URL).host}/ws`;
            check(url === expected, `connection URL ${url}, expected ${expected}`);
        });

        await test("TLS: Connect opens the socket over HTTP/2 (extended CONNECT), no extension", async () => {
            await page.click("#connectButton");
            await waitForState(page, "Open");
            await waitForLog(page, "open", OPENED_PLAIN);
            const [opened] = await waitForServerLog(TLS_LOG, "WebSocket opened");
            const { http, compression } = logFields(opened, "WebSocket opened");
            check(compression === "false", `the server logged compression=${compression}`);
            if (process.env.VERBOSE) {
                console.log(`     server: ${opened.trim()}`);
                console.log(`     Chromium saw handshake status(es): ${handshakes.join(", ") || "none"}`);
            }
            check(
                http === "HTTP/2.0",
                `Chromium opened the WebSocket over ${http}, not as an HTTP/2 extended CONNECT ` +
                    `(RFC 8441); the server logged: ${opened.trim()}`,
            );
            // DevTools reports the handshake's response: a 200, not a 101.
            check(handshakes.length > 0, "DevTools reported no handshake response for the WebSocket");
            check(
                handshakes.every((status) => status === 200),
                `Chromium saw handshake status(es) ${handshakes.join(", ")}, expected 200`,
            );
        });

        await test("TLS: `hello` is echoed", () => sendThroughPage(page, "hello"));
        await test("TLS: non-ASCII text is echoed", () => sendThroughPage(page, NON_ASCII));
        await test("TLS: a 10 KB message is echoed", async () => {
            await sendThroughPage(page, TEN_KB);
            const received = await logTexts(page, "receive");
            check(received.at(-1)?.length === TEN_KB.length, "the echo has another length");
        });

        await test("TLS: Close Socket closes with 1000; the server logs the HTTP/2 socket", async () => {
            await page.click("#closeButton");
            await waitForLog(page, "close", "Connection closed. Code: 1000. Reason: Closing from client");
            await waitForState(page, "Closed");
            const errors = await logTexts(page, "error");
            check(errors.length === 0, `errors logged: ${errors.join("; ")}`);
            const [ended] = await waitForServerLog(TLS_LOG, "WebSocket connection ended");
            if (process.env.VERBOSE) {
                console.log(`     server: ${ended.trim()}`);
            }
            const fields = logFields(ended, "WebSocket connection ended");
            check(fields.http === "HTTP/2.0", `the socket that ended came over ${fields.http}: ${ended.trim()}`);
            check(fields.echoed === "3", `the server echoed ${fields.echoed} messages, expected 3`);
            check(fields.close_code === "1000", `the server saw close code ${fields.close_code}, expected 1000`);
        });
    } finally {
        await browser.close();
    }
}

// A TCP proxy on the loopback to `targetUrl`'s port, counting the bytes each way: `up` from the
// browser to the server, `down` back. The returned `url` has the proxy's port.
async function countingProxy(targetUrl) {
    const target = new URL(targetUrl);
    const counts = { up: 0, down: 0 };
    const sockets = new Set();
    const server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port), target.hostname);
        for (const socket of [client, upstream]) {
            sockets.add(socket);
            socket.on("close", () => {
                sockets.delete(socket);
                client.destroy();
                upstream.destroy();
            });
            socket.on("error", () => {});
        }
        client.on("data", (chunk) => {
            counts.up += chunk.length;
        });
        upstream.on("data", (chunk) => {
            counts.down += chunk.length;
        });
        client.pipe(upstream);
        upstream.pipe(client);
    });
    await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolve);
    });
    return {
        url: `${target.protocol}//127.0.0.1:${server.address().port}`,
        counts,
        async close() {
            for (const socket of sockets) {
                socket.destroy();
            }
            await new Promise((resolve) => server.close(resolve));
        },
    };
}

// The echo page against a server started with --compression (`tls`: with --tls too, so the
// socket goes over HTTP/2): Chromium negotiates permessage-deflate, the page shows it, the server
// logs compression=true, messages echo, and 1 MiB of JSON takes a fraction of that on the wire
// each way (through a counting proxy), which only compression on both sides can do.
async function compressionScenario(label, url, serverLog, consoleLines) {
    const tls = url.startsWith("https:");
    const proxy = await countingProxy(url);
    const browser = await launch(tls ? ["--ignore-certificate-errors"] : []);
    try {
        const page = browser.context.pages()[0] ?? (await browser.context.newPage());
        page.setDefaultTimeout(TIMEOUT);
        page.on("console", (message) => consoleLines.push(`[${label} ${message.type()}] ${message.text()}`));
        page.on("pageerror", (error) => consoleLines.push(`[${label} pageerror] ${error.message}`));

        await test(`${label}: Connect negotiates permessage-deflate`, async () => {
            const response = await page.goto(proxy.url);
            check(response?.status() === 200, `GET / answered ${response?.status()}`);
            await page.click("#connectButton");
            await waitForState(page, "Open");
            await page.waitForSelector("#commsLog tr.log-open", { timeout: TIMEOUT });
            const [opened] = await logTexts(page, "open");
            if (process.env.VERBOSE) {
                console.log(`     page: ${opened}`);
            }
            check(
                /^Connection opened\. Extensions: permessage-deflate(;|$)/.test(opened),
                `the page logged: ${opened}`,
            );
            const [line] = await waitForServerLog(serverLog, "WebSocket opened");
            const fields = logFields(line, "WebSocket opened");
            check(fields.compression === "true", `the server logged: ${line.trim()}`);
            const http = tls ? "HTTP/2.0" : "HTTP/1.1";
            check(fields.http === http, `the socket came over ${fields.http}, expected ${http}`);
        });

        await test(`${label}: \`hello\` is echoed`, () => sendThroughPage(page, "hello"));
        await test(`${label}: non-ASCII text is echoed`, () => sendThroughPage(page, NON_ASCII));
        await test(`${label}: 1 MiB of JSON is echoed, compressed both ways`, async () => {
            const before = { ...proxy.counts };
            await sendThroughPage(page, JSON_MIB);
            const received = await logTexts(page, "receive");
            check(received.at(-1)?.length === JSON_MIB.length, "the echo has another length");
            const up = proxy.counts.up - before.up;
            const down = proxy.counts.down - before.down;
            if (process.env.VERBOSE) {
                console.log(`     ${JSON_MIB.length} bytes of JSON: ${up} bytes to the server, ${down} back`);
            }
            // Uncompressed, each way would carry more than the message itself.
            const bound = JSON_MIB.length / 4;
            check(up < bound, `Chromium sent ${up} bytes for ${JSON_MIB.length} of JSON`);
            check(down < bound, `the server sent ${down} bytes for ${JSON_MIB.length} of JSON`);
        });

        await test(`${label}: Close Socket closes with 1000; the server logs 3 echoes`, async () => {
            await page.click("#closeButton");
            await waitForLog(page, "close", "Connection closed. Code: 1000. Reason: Closing from client");
            await waitForState(page, "Closed");
            const errors = await logTexts(page, "error");
            check(errors.length === 0, `errors logged: ${errors.join("; ")}`);
            const [ended] = await waitForServerLog(serverLog, "WebSocket connection ended");
            const fields = logFields(ended, "WebSocket connection ended");
            check(fields.echoed === "3", `the server echoed ${fields.echoed} messages, expected 3`);
            check(fields.close_code === "1000", `the server saw close code ${fields.close_code}, expected 1000`);
        });
    } finally {
        await browser.close();
        await proxy.close();
    }
}

async function main() {
    const browser = await launch();
    const context = browser.context;
    const browserVersion = context.browser()?.version() ?? "unknown";
    console.log(
        `Chromium ${browserVersion} (${CHROMIUM}) against ${ECHO_URL}, then ${TLS_URL}, ` +
            `then with compression ${DEFLATE_URL} and ${DEFLATE_TLS_URL}`,
    );
    const consoleLines = [];
    try {
        const page = context.pages()[0] ?? (await context.newPage());
        page.setDefaultTimeout(TIMEOUT);
        page.on("console", (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
        page.on("pageerror", (error) => consoleLines.push(`[pageerror] ${error.message}`));

        await test("the page loads, ready to connect", async () => {
            const response = await page.goto(ECHO_URL);
            check(response?.status() === 200, `GET / answered ${response?.status()}`);
            check((await page.title()) === "WebSocket Sample Application", "unexpected title");
            const state = await page.textContent("#stateLabel");
            check(state === "Ready to connect...", `state label: ${state}`);
            const url = await page.inputValue("#connectionUrl");
            const expected = `ws://${new URL(ECHO_URL).host}/ws`;
            check(url === expected, `connection URL ${url}, expected ${expected}`);
            check(await page.isDisabled("#sendButton"), "Send is enabled before connecting");
        });

        // The live panel (closed until opened): a socket of its own on the `stats` subprotocol,
        // on which the server pushes its counts once a second.
        const panelNumber = (selector) => page.evaluate((selector) => Number(document.querySelector(selector).textContent), selector);
        const panelData = () => page.evaluate(() => ({ ...document.getElementById("panel").dataset }));
        let panelBefore = null;
        await test("Live panel: opening it brings the server's counts on the `stats` subprotocol", async () => {
            check(!(await page.isVisible("#panelOpen")), "the panel is open before it is asked for");
            await page.click("#panel summary");
            await page.waitForFunction(() => document.getElementById("panel").dataset.received !== undefined, null, {
                timeout: TIMEOUT,
            });
            check((await panelNumber("#panelOpen")) === 1, "the panel's own socket is not the one open socket");
            panelBefore = await panelData();
            const opened = await waitForServerLog(ECHO_LOG, "WebSocket opened");
            check(opened.some((line) => line.includes('protocol=Some("stats")')), `no stats socket: ${opened.join("\n")}`);
        });

        await test("Connect opens the socket, no extension (compression off)", async () => {
            await page.click("#connectButton");
            await waitForState(page, "Open");
            await waitForLog(page, "open", OPENED_PLAIN);
            check(await page.isEnabled("#sendButton"), "Send is disabled when open");
            check(await page.isDisabled("#connectButton"), "Connect is enabled when open");
            // Chromium offers permessage-deflate on every handshake; this server declines it. (The
            // live panel's socket, on the `stats` subprotocol, opened first.)
            const lines = await waitForServerLog(ECHO_LOG, "WebSocket opened", 2);
            const opened = lines.find((line) => line.includes("protocol=None")) ?? lines[0];
            const { compression } = logFields(opened, "WebSocket opened");
            check(compression === "false", `the server logged compression=${compression}`);
        });

        await test("`hello` is echoed", () => sendThroughPage(page, "hello"));
        await test("non-ASCII text is echoed", () => sendThroughPage(page, NON_ASCII));
        await test("a 10 KB message is echoed", async () => {
            await sendThroughPage(page, TEN_KB);
            const received = await logTexts(page, "receive");
            check(received.at(-1)?.length === TEN_KB.length, "the echo has another length");
        });

        await test("Close Socket closes with 1000", async () => {
            await page.click("#closeButton");
            await waitForLog(page, "close", "Connection closed. Code: 1000. Reason: Closing from client");
            await waitForState(page, "Closed");
            check(await page.isEnabled("#connectButton"), "Connect is disabled after closing");
            const errors = await logTexts(page, "error");
            check(errors.length === 0, `errors logged: ${errors.join("; ")}`);
            const received = await logTexts(page, "receive");
            check(received.length === 3, `${received.length} echoes logged, expected 3`);
        });

        await test("Live panel: its numbers moved with the page's messages and close", async () => {
            // Totals: the 3 messages in, their 3 echoes out (and the panel's own pushes); the
            // chart's `in` line left its floor; the Close with 1000 is among the codes seen; the
            // panel's socket is the one open again.
            const before = panelBefore ?? { received: "0", sent: "0" };
            await page.waitForFunction(
                (before) => {
                    const data = document.getElementById("panel").dataset;
                    return Number(data.received) >= Number(before.received) + 3
                        && Number(data.sent) >= Number(before.sent) + 3
                        && document.getElementById("panelCloses").textContent.includes("1000 × 1")
                        && document.getElementById("panelOpen").textContent === "1";
                },
                before,
                { timeout: TIMEOUT },
            );
            // A few seconds of chart.
            await page.waitForFunction(
                () => document.getElementById("chartIn").getAttribute("points").trim().split(" ").length >= 3,
                null,
                { timeout: TIMEOUT },
            );
            const after = await panelData();
            check(Number(after.received) - Number(before.received) === 3, `received ${before.received} → ${after.received}`);
            const ins = await page.getAttribute("#chartIn", "points");
            const peak = Math.min(...ins.trim().split(" ").map((point) => Number(point.split(",")[1])));
            check(peak < 88, `the chart's in line never rose: ${ins}`);
            const outs = await page.getAttribute("#chartOut", "points");
            const outPeak = Math.min(...outs.trim().split(" ").map((point) => Number(point.split(",")[1])));
            check(outPeak < 88, `the chart's out line never rose: ${outs}`);
        });

        if (SCREENSHOT) {
            await test("screenshot of the finished page", async () => {
                mkdirSync(dirname(SCREENSHOT), { recursive: true });
                await page.evaluate(() => window.scrollTo(0, 0));
                await page.screenshot({ path: SCREENSHOT, fullPage: true });
            });
        }

        // The Server clock box asks for the `clock` subprotocol: the server pushes a tick a
        // second from another task (a WebSocketSender) while it echoes; ticks go to the clock,
        // not the Communication Log.
        await test("Server clock: the `clock` subprotocol ticks while the echo goes on", async () => {
            await page.goto(ECHO_URL);
            await page.check("#clock");
            await page.click("#connectButton");
            await waitForState(page, "Open");
            await waitForLog(page, "open", "Connection opened. Protocol: clock. Extensions: none");
            const ticks = () => page.evaluate(() => Number(document.getElementById("clockLabel").dataset.ticks || 0));
            await page.waitForFunction(
                () => Number(document.getElementById("clockLabel").dataset.ticks || 0) >= 1,
                null,
                { timeout: TIMEOUT },
            );
            const first = await page.textContent("#clockLabel");
            check(/^\d+ \d\d:\d\d:\d\d UTC$/.test(first), `clock shows: ${first}`);
            const before = await ticks();
            await page.waitForFunction(
                (before) => Number(document.getElementById("clockLabel").dataset.ticks || 0) >= before + 2,
                before,
                { timeout: TIMEOUT },
            );
            const later = await page.textContent("#clockLabel");
            check(later !== first, `the clock did not tick: ${later}`);
            await sendThroughPage(page, "hello");
            const received = await logTexts(page, "receive");
            check(received.length === 1 && received[0] === "hello", `the log holds: ${received.join("; ")}`);
            await page.click("#closeButton");
            await waitForLog(page, "close", "Connection closed. Code: 1000. Reason: Closing from client");
            await waitForState(page, "Closed");
            const errors = await logTexts(page, "error");
            check(errors.length === 0, `errors logged: ${errors.join("; ")}`);
        });

        // A server that allows only https://somewhere.else refuses its own page.
        await test("a refused origin: the page shows the failure", async () => {
            const statuses = [];
            const cdp = await context.newCDPSession(page);
            await cdp.send("Network.enable");
            cdp.on("Network.webSocketHandshakeResponseReceived", (event) => statuses.push(event.response.status));
            await page.goto(REFUSING_URL);
            await page.click("#connectButton");
            await waitForLog(page, "error", "Error: the WebSocket connection failed or broke (see the browser console)");
            await page.waitForSelector("#commsLog tr.log-close", { timeout: TIMEOUT });
            const [closed] = await logTexts(page, "close");
            check(closed.startsWith("Connection closed. Code: 1006."), `close line: ${closed}`);
            await waitForState(page, "Closed");
            check((await logTexts(page, "open")).length === 0, "the socket opened");
            // What Chromium saw: the handshake response (DevTools protocol) and its console message.
            const consoleSaw403 = consoleLines.some((line) => /Unexpected response code: 403/.test(line));
            if (process.env.VERBOSE) {
                console.log(`     handshake statuses: ${statuses.join(", ")}; console saw 403: ${consoleSaw403}`);
            }
            check(
                statuses.includes(403) || consoleSaw403,
                `Chromium did not report a 403 (handshake statuses: ${statuses.join(", ") || "none"})`,
            );
        });

        await test("a refused origin: the server answered 403", async () => {
            const pageOrigin = new URL(REFUSING_URL).origin;
            const status = await handshakeStatus(REFUSING_URL, pageOrigin);
            check(status === 403, `a handshake with Origin: ${pageOrigin} got ${status}`);
            const allowed = await handshakeStatus(REFUSING_URL, "https://somewhere.else");
            check(allowed === 101, `a handshake with the allowed origin got ${allowed}`);
            const log = readFileSync(REFUSING_LOG, "utf8");
            const refusals = log.split("\n").filter((line) => line.includes("origin not allowed"));
            // The browser's attempt and ours.
            check(
                refusals.filter((line) => line.includes(`"${pageOrigin}"`)).length >= 2,
                `the server log shows ${refusals.length} refusals: ${refusals.join(" | ")}`,
            );
        });

        // A server started with --token: the page's Token field (["bearer", token] as the
        // protocol list) and ?access_token= in the URL.
        const tokenStatuses = [];
        const tokenCdp = await context.newCDPSession(page);
        await tokenCdp.send("Network.enable");
        tokenCdp.on("Network.webSocketHandshakeResponseReceived", (event) => tokenStatuses.push(event.response.status));
        const tokenWsUrl = `ws://${new URL(TOKEN_URL).host}/ws`;

        // Connects with the page's controls; the number of close lines before it is `closes`.
        async function connectRefused(what) {
            const closes = (await logTexts(page, "close")).length;
            // Chromium words a 401 as an authentication failure, not as a response code.
            const is401 = (line) => /Unexpected response code: 401|HTTP Authentication failed/.test(line);
            const before = consoleLines.filter(is401).length;
            await page.click("#connectButton");
            await page.waitForFunction(
                (n) => document.querySelectorAll("#commsLog tr.log-close").length > n,
                closes,
                { timeout: TIMEOUT },
            );
            const closed = (await logTexts(page, "close")).at(-1);
            check(closed.startsWith("Connection closed. Code: 1006."), `${what}: close line ${closed}`);
            await waitForState(page, "Closed");
            // What Chromium saw: the handshake response (DevTools) or its console message, which
            // may come a little after the close event.
            const deadline = Date.now() + TIMEOUT;
            const saw401 = () =>
                tokenStatuses.at(-1) === 401 ||
                consoleLines.filter(is401).length > before;
            while (!saw401() && Date.now() < deadline) {
                await new Promise((resolve) => setTimeout(resolve, 50));
            }
            check(
                saw401(),
                `${what}: Chromium did not report a 401 (handshake statuses: ${tokenStatuses.join(", ") || "none"}; ` +
                    `console: ${consoleLines.slice(-3).join(" | ")})`,
            );
        }

        async function connectEchoClose(what, openedLine) {
            const opens = (await logTexts(page, "open")).length;
            await page.click("#connectButton");
            await waitForState(page, "Open");
            const opened = (await logTexts(page, "open")).at(-1);
            check((await logTexts(page, "open")).length === opens + 1, `${what}: no new open line`);
            check(opened === openedLine, `${what}: ${opened}`);
            await sendThroughPage(page, `hello with ${what}`);
            await page.click("#closeButton");
            await waitForState(page, "Closed");
        }

        await test("token: no token gets 401", async () => {
            await page.goto(TOKEN_URL);
            await connectRefused("no token");
            check((await logTexts(page, "open")).length === 0, "the socket opened without a token");
        });

        await test("token: a wrong token in the protocol list gets 401", async () => {
            await page.fill("#token", `${TOKEN}-wrong`);
            await connectRefused("a wrong token");
            check((await logTexts(page, "open")).length === 0, "the socket opened with a wrong token");
        });

        await test("token: the token in the protocol list opens the socket, answered `bearer`", async () => {
            await page.fill("#token", TOKEN);
            await connectEchoClose("the protocol token", "Connection opened. Protocol: bearer. Extensions: none");
        });

        await test("token: the token in the query opens the socket", async () => {
            await page.fill("#token", "");
            await page.fill("#connectionUrl", `${tokenWsUrl}?access_token=${encodeURIComponent(TOKEN)}`);
            await connectEchoClose("the query token", OPENED_PLAIN);
        });

        await test("token: a wrong token in the query gets 401", async () => {
            await page.fill("#connectionUrl", `${tokenWsUrl}?access_token=wrong`);
            await connectRefused("a wrong query token");
        });

        await test("token: the server logged the refusals and the openings, never the token", async () => {
            // The crate's debug event and the example's info event, for each of the two sockets.
            const opened = (await waitForServerLog(TOKEN_LOG, "WebSocket opened", 4)).filter((line) =>
                line.includes("authenticated="),
            );
            check(
                opened.length === 2 && opened.every((line) => logFields(line, "WebSocket opened").authenticated === "true"),
                `openings: ${opened.join(" | ")}`,
            );
            const refusals = await waitForServerLog(TOKEN_LOG, "refused WebSocket request: authentication", 3);
            check(refusals.length >= 3, `${refusals.length} refusals logged`);
            const log = readFileSync(TOKEN_LOG, "utf8");
            check(!log.includes(TOKEN), "the token is in the server's log");
        });
    } finally {
        await browser.close();
    }
    await tlsScenario(consoleLines);
    await compressionScenario("deflate", DEFLATE_URL, DEFLATE_LOG, consoleLines);
    await compressionScenario("deflate TLS", DEFLATE_TLS_URL, DEFLATE_TLS_LOG, consoleLines);
    if (results.failed && consoleLines.length) {
        console.log("browser console:");
        for (const line of consoleLines) {
            console.log(`  ${line}`);
        }
    }
    console.log(`${results.passed} passed, ${results.failed} failed`);
    return results.failed ? 1 : 0;
}

main().then(
    (status) => process.exit(status),
    (error) => {
        console.error(error);
        console.log(`${results.passed} passed, ${results.failed + 1} failed`);
        process.exit(1);
    },
);
