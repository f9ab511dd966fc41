// Playwright settings of the browser benchmarks (scripts/bench-threads.sh): the e2e settings, but only
// the *.bench.ts files (never run by scripts/e2e.sh or CI).
import { defineConfig } from "@playwright/test";
import base from "./playwright.config.js";

export default defineConfig({ ...base, testMatch: /.*\.bench\.ts$/, timeout: 60 * 60_000, reporter: [["list"]] });
