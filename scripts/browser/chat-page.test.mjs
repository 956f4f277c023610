// Drives headless Chromium through the chat example's page: two pages, each on its own chat
// instance, the two instances sharing their rooms through one Redis (`chat --redis URL`).
//
// Run through scripts/browser.sh, which starts redis-server and the two instances and sets:
//   CHAT_EAST_URL, CHAT_WEST_URL   http://127.0.0.1:PORT of each instance
//   CHAT_SCREENSHOT                where to save a screenshot of the east page at the end
//   CHROMIUM                       the browser (default /usr/bin/chromium)
//
// Prints one line per test and a final `N passed, M failed`; exits 1 when a test failed.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

import { check, required, results, test } from "./harness.mjs";

const EAST = required("CHAT_EAST_URL");
const WEST = required("CHAT_WEST_URL");
const SCREENSHOT = process.env.CHAT_SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15_000;

// Opens the page, sets the nickname and room, and presses Join.
async function join(browser, url, nick, room) {
    const page = await browser.newPage();
    await page.goto(url);
    await page.fill("#nick", nick);
    await page.fill("#room", room);
    await page.click("#joinButton");
    await page.waitForFunction(() => document.getElementById("stateLabel").dataset.state === "open", null, {
        timeout: TIMEOUT,
    });
    return page;
}

async function members(page) {
    return page.$$eval("#members li", (items) => items.map((item) => item.textContent).sort());
}

async function waitForMembers(page, expected) {
    const want = [...expected].sort();
    await page
        .waitForFunction(
            (want) =>
                JSON.stringify([...document.querySelectorAll("#members li")].map((li) => li.textContent).sort()) ===
                JSON.stringify(want),
            want,
            { timeout: TIMEOUT },
        )
        .catch(async () => {
            throw new Error(`present: ${JSON.stringify(await members(page))}, expected ${JSON.stringify(want)}`);
        });
}

// The chat lines in the log, as "nick: text".
async function lines(page) {
    return page.$$eval("#log li.message", (items) => items.map((item) => item.textContent));
}

async function say(page, text) {
    await page.fill("#text", text);
    await page.click("#sayButton");
}

async function waitForLine(page, line) {
    await page
        .waitForFunction((line) => [...document.querySelectorAll("#log li.message")].some((li) => li.textContent === line), line, {
            timeout: TIMEOUT,
        })
        .catch(async () => {
            throw new Error(`no line ${JSON.stringify(line)}; the log has ${JSON.stringify(await lines(page))}`);
        });
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
let alice;
let bob;
try {
    await test("two pages on two instances see each other present", async () => {
        alice = await join(browser, EAST, "alice", "lobby");
        await waitForMembers(alice, ["alice"]);
        bob = await join(browser, WEST, "bob", "lobby");
        await waitForMembers(bob, ["alice", "bob"]);
        await waitForMembers(alice, ["alice", "bob"]);
    });

    await test("each page sees the other's messages, once", async () => {
        await say(alice, "hello from east, привет");
        await waitForLine(bob, "alice: hello from east, привет");
        await say(bob, "hi alice, this is west");
        await waitForLine(alice, "bob: hi alice, this is west");
        await waitForLine(alice, "alice: hello from east, привет");
        await waitForLine(bob, "bob: hi alice, this is west");
        // Time for a duplicate to arrive, if there were one.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const expected = ["alice: hello from east, привет", "bob: hi alice, this is west"];
        for (const [name, page] of [["alice", alice], ["bob", bob]]) {
            const got = await lines(page);
            check(JSON.stringify(got) === JSON.stringify(expected), `${name}'s log: ${JSON.stringify(got)}`);
        }
    });

    await test("a page in another room sees none of it", async () => {
        const carol = await join(browser, WEST, "carol", "garden");
        await waitForMembers(carol, ["carol"]);
        await say(alice, "lobby only");
        await waitForLine(bob, "alice: lobby only");
        await new Promise((resolve) => setTimeout(resolve, 300));
        const got = await lines(carol);
        check(got.length === 0, `carol's log: ${JSON.stringify(got)}`);
        await carol.close();
    });

    if (SCREENSHOT && alice) {
        mkdirSync(dirname(SCREENSHOT), { recursive: true });
        await alice.screenshot({ path: SCREENSHOT, fullPage: true });
    }

    await test("a page that leaves is gone from the other instance's list", async () => {
        await bob.close();
        await waitForMembers(alice, ["alice"]);
    });
} finally {
    await browser.close();
}

console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed === 0 ? 0 : 1);
