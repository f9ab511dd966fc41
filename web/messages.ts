// The message line under the header: info, warnings and errors, each with a kind that tests read.
import { SamError } from "../js/client.js";
import { ui } from "./dom.js";
import { store } from "./state.js";

export type MessageLevel = "info" | "warn" | "error";

export function showMessage(text: string, level: MessageLevel, kind = ""): void {
  ui.message.textContent = text;
  ui.message.className = `message ${level}`;
  ui.message.dataset.kind = kind;
  ui.message.dataset.level = level;
  ui.message.hidden = false;
  if (level === "error") store.lastError = { kind, message: text };
}

export function clearMessage(): void {
  ui.message.hidden = true;
  ui.message.textContent = "";
  ui.message.dataset.kind = "";
}

/** The message shown, or null. */
export function currentMessage(): { level: string; kind: string; text: string } | null {
  return ui.message.hidden ? null : { level: ui.message.dataset.level ?? "", kind: ui.message.dataset.kind ?? "", text: ui.message.textContent ?? "" };
}

/** An error's kind, text and whether it is fatal (SamError's, else "other"). */
export function errorText(e: unknown): { kind: string; message: string; fatal: boolean } {
  if (e instanceof SamError) return { kind: e.kind, message: e.message, fatal: e.fatal };
  if (e instanceof Error) return { kind: "other", message: e.message, fatal: false };
  return { kind: "other", message: String(e), fatal: false };
}
