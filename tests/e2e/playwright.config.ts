// Playwright settings for the end-to-end tests: the Debian chromium, headless, with the flags that give
// headless chromium a (SwiftShader) WebGPU adapter where it can have one. Run with scripts/e2e.sh.
import { defineConfig } from "@playwright/test";

const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export default defineConfig({
  testDir: ".",
  testMatch: /.*\.spec\.ts$/,
  outputDir: "./artifacts/test-results",
  // The CPU wasm build embeds the tiny model in seconds, but CI machines are slow and shared.
  timeout: 10 * 60_000,
  expect: { timeout: 120_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [["list"], ["json", { outputFile: "./artifacts/results.json" }]],
  use: {
    headless: true,
    viewport: { width: 1400, height: 1000 },
    acceptDownloads: true,
    screenshot: "only-on-failure",
    trace: "off",
    launchOptions: {
      executablePath: chromium,
      args: [
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--enable-features=Vulkan",
        "--use-angle=swiftshader",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    },
  },
});
