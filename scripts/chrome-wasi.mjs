// Runs a wasm32-wasip1 program in headless Chromium's V8, the engine our pages run on, printing what it
// writes to stdout and stderr. Node's V8 (scripts/wasi-run.mjs) is older and compiles our kernels
// differently (under Node 20 the matrix kernel's loop keeps its counter on the stack), so kernel timings
// meant for the page come from here (BENCHMARKS.md, session 14). For programs that need only arguments,
// clocks, stdout/stderr and random bytes (examples/kernels), not files.
//
// Usage: node scripts/chrome-wasi.mjs PROGRAM.wasm [ARGS...]   (env CHROMIUM_PATH, default /usr/bin/chromium)
import { chromium } from "@playwright/test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { argv, env, exit } from "node:process";

const [program, ...args] = argv.slice(2);
if (!program) {
  console.error("usage: node scripts/chrome-wasi.mjs PROGRAM.wasm [ARGS...]");
  exit(2);
}
const bytes = readFileSync(resolve(program));
const browser = await chromium.launch({ executablePath: env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
let status = 1;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log(m.text()));
  await page.route("http://wasi.invalid/**", (route) =>
    route.request().url().endsWith("/program.wasm")
      ? route.fulfill({ body: bytes, contentType: "application/wasm" })
      : route.fulfill({ body: "<!doctype html><title>wasi</title>", contentType: "text/html" }),
  );
  await page.goto("http://wasi.invalid/");
  status = await page.evaluate(async (argList) => {
    const module = await WebAssembly.compileStreaming(fetch("/program.wasm"));
    const encoder = new TextEncoder();
    const argBytes = argList.map((a) => encoder.encode(`${a}\0`));
    let memory;
    const view = () => new DataView(memory.buffer);
    const lines = ["", "", ""];
    class Exit {
      constructor(code) {
        this.code = code;
      }
    }
    const calls = {
      args_sizes_get(count, size) {
        view().setUint32(count, argBytes.length, true);
        view().setUint32(size, argBytes.reduce((n, a) => n + a.length, 0), true);
        return 0;
      },
      args_get(ptrs, buf) {
        for (const [i, a] of argBytes.entries()) {
          view().setUint32(ptrs + 4 * i, buf, true);
          new Uint8Array(memory.buffer, buf, a.length).set(a);
          buf += a.length;
        }
        return 0;
      },
      environ_sizes_get(count, size) {
        view().setUint32(count, 0, true);
        view().setUint32(size, 0, true);
        return 0;
      },
      environ_get: () => 0,
      clock_time_get(id, _precision, out) {
        const ms = id === 0 ? Date.now() : performance.now();
        view().setBigUint64(out, BigInt(Math.round(ms * 1e6)), true);
        return 0;
      },
      fd_write(fd, iovs, count, written) {
        if (fd !== 1 && fd !== 2) return 8; // EBADF
        let total = 0;
        for (let i = 0; i < count; i++) {
          const [at, len] = [view().getUint32(iovs + 8 * i, true), view().getUint32(iovs + 8 * i + 4, true)];
          lines[fd] += new TextDecoder().decode(new Uint8Array(memory.buffer, at, len).slice());
          total += len;
        }
        const parts = lines[fd].split("\n");
        lines[fd] = parts.pop();
        for (const line of parts) console.log(line);
        view().setUint32(written, total, true);
        return 0;
      },
      random_get(at, len) {
        // getRandomValues fills at most 65536 bytes a call.
        for (let done = 0; done < len; done += 65536) {
          crypto.getRandomValues(new Uint8Array(memory.buffer, at + done, Math.min(65536, len - done)));
        }
        return 0;
      },
      sched_yield: () => 0,
      proc_exit(code) {
        throw new Exit(code);
      },
    };
    // Anything else (files, sockets) answers ENOSYS.
    const wasi = new Proxy(calls, { get: (target, name) => target[name] ?? (() => 52) });
    const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi });
    memory = instance.exports.memory;
    try {
      instance.exports._start();
      return 0;
    } catch (e) {
      if (e instanceof Exit) return e.code;
      console.log(String(e));
      return 1;
    } finally {
      for (const rest of lines) if (rest) console.log(rest);
    }
  }, [program, ...args]);
} finally {
  await browser.close();
}
exit(status);
