// Playwright settings for the consumer-app tests (scripts/consumers.sh): the same headless Debian
// chromium and flags as the demo's end-to-end tests.
import { defineConfig } from "@playwright/test";
import e2e from "../e2e/playwright.config.js";

export default defineConfig({
  testDir: ".",
  testMatch: /consumers\.spec\.ts$/,
  outputDir: "./artifacts/test-results",
  timeout: 5 * 60_000,
  expect: { timeout: 60_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [["list"], ["json", { outputFile: "./artifacts/results.json" }]],
  use: { ...e2e.use, screenshot: "off" },
});
