// When the demo restarts its model worker: which errors mean the worker (its wasm module) is gone, and a
// limit on automatic restarts so that a model that traps on every load does not restart forever.
import { SamError } from "../js/client.js";

/**
 * Whether `e` leaves the worker unusable: a trap of its wasm module (a panic or out of memory, `fatal`),
 * or the worker itself failing (kind "worker"). Such an error needs a new worker and the model again.
 */
export function isFatal(e: unknown): boolean {
  return e instanceof SamError && (e.fatal || e.kind === "worker");
}

/** Whether `e` only says that its client was replaced (by a restart): nothing to report. */
export function isSuperseded(e: unknown): boolean {
  return e instanceof SamError && e.kind === "disposed";
}

/** Allows at most `max` restarts within `windowMs` milliseconds. */
export class RestartLimiter {
  private readonly times: number[] = [];

  constructor(
    private readonly max = 3,
    private readonly windowMs = 120_000,
  ) {}

  /** Records a restart and says whether it is allowed. */
  allow(now = performance.now()): boolean {
    while (this.times.length > 0 && now - (this.times[0] ?? now) > this.windowMs) this.times.shift();
    if (this.times.length >= this.max) return false;
    this.times.push(now);
    return true;
  }
}
