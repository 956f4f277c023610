// What the browser tests share: their settings from the environment, checks, and the
// `ok` / `FAIL` lines with the closing `N passed, M failed` count.

export function required(name) {
    const value = process.env[name];
    if (!value) {
        console.error(`error: set ${name} (run through scripts/browser.sh)`);
        process.exit(2);
    }
    return value;
}

export function check(condition, message) {
    if (!condition) {
        throw new Error(message);
    }
}

export const results = { passed: 0, failed: 0 };

// Runs one test: prints `ok   name`, or `FAIL name: the error's first line` (the stack too with
// VERBOSE set), and counts it.
export async function test(name, body) {
    try {
        await body();
        results.passed += 1;
        console.log(`ok   ${name}`);
    } catch (e) {
        results.failed += 1;
        console.log(`FAIL ${name}: ${e.message.split("\n")[0]}`);
        if (process.env.VERBOSE) {
            console.log(e.stack);
        }
    }
}
