// The demo's model menu: the official checkpoints one click away. Each preset names its official
// download URL, a mirror that sends CORS headers (a page may only read a cross-origin download whose
// host allows it), its size and which backend fits it. `?model=mobile_sam` picks a preset;
// `?mirror=<base URL>` downloads every preset's file from <base URL><file> instead (a local mirror:
// the e2e tests, an intranet). Files and Cache Storage work as before: the menu only fills the URL.
//
// The hosts' CORS behaviour was not checkable from the machine this was written on (no internet):
// dl.fbaipublicfiles.com is not known to send Access-Control-Allow-Origin, so the SAM presets load
// from the Hugging Face mirror (which sends it, also on its LFS redirects); mobile_sam.pt loads from
// raw.githubusercontent.com (CORS: *). Where a download is refused, downloadFailedMessage says to
// download the file and pick it.

export interface ModelPreset {
  /** `?model=` value. */
  id: string;
  file: string;
  label: string;
  bytes: number;
  /** How the size is written where the file is offered. */
  size: string;
  /** The official download URL. */
  official: string;
  /** Whether the official host sends CORS headers (then the page downloads from it). */
  officialCors: boolean;
  /** A copy of the same file on a host that sends CORS headers. */
  mirror: string;
  /** Which backend fits this model. */
  backend: string;
}

export const MODEL_PRESETS: readonly ModelPreset[] = [
  {
    id: "mobile_sam",
    file: "mobile_sam.pt",
    label: "MobileSAM",
    bytes: 40_728_226,
    size: "39 MB",
    official: "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
    officialCors: true,
    mirror: "https://huggingface.co/dhkim2810/MobileSAM/resolve/main/mobile_sam.pt",
    backend: "any: WebGPU, or the CPU (a click in well under a second after a few seconds of embedding)",
  },
  {
    id: "vit_b",
    file: "sam_vit_b_01ec64.pth",
    label: "SAM ViT-B",
    bytes: 375_042_383,
    size: "358 MiB",
    official: "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    officialCors: false,
    mirror: "https://huggingface.co/ybelkada/segment-anything/resolve/main/checkpoints/sam_vit_b_01ec64.pth",
    backend: "WebGPU; the CPU works but embeds an image in tens of seconds",
  },
  {
    id: "vit_l",
    file: "sam_vit_l_0b3195.pth",
    label: "SAM ViT-L",
    bytes: 1_249_524_607,
    size: "1.2 GiB",
    official: "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    officialCors: false,
    mirror: "https://huggingface.co/ybelkada/segment-anything/resolve/main/checkpoints/sam_vit_l_0b3195.pth",
    backend: "WebGPU with several GB of GPU memory; too slow on the CPU",
  },
  {
    id: "vit_h",
    file: "sam_vit_h_4b8939.pth",
    label: "SAM ViT-H",
    bytes: 2_564_550_879,
    size: "2.4 GiB",
    official: "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    officialCors: false,
    mirror: "https://huggingface.co/ybelkada/segment-anything/resolve/main/checkpoints/sam_vit_h_4b8939.pth",
    backend: "WebGPU on a desktop GPU only (past 4 GB of buffers); not the CPU",
  },
];

/** The preset of a `?model=` value: its id ("mobile_sam", "vit_b", ...) or file name; null for anything else (a URL). */
export function presetNamed(name: string): ModelPreset | null {
  return MODEL_PRESETS.find((p) => p.id === name || p.file === name || p.file.replace(/\.[a-z]+$/, "") === name) ?? null;
}

/** Where the page downloads a preset from: `<mirrorBase><file>` when given, else the official URL where it allows CORS, else the mirror. */
export function presetUrl(preset: ModelPreset, mirrorBase: string | null): string {
  if (mirrorBase) return new URL(preset.file, new URL(mirrorBase, location.href)).href;
  return preset.officialCors ? preset.official : preset.mirror;
}

/** The message for a preset whose download failed (a cross-origin refusal reads as a network error). */
export function downloadFailedMessage(preset: ModelPreset, url: string, reason: string): string {
  const host = new URL(url, location.href).host;
  return (
    `Could not download ${preset.file} (${preset.size}) from ${host}: ${reason}. ` +
    `The host may not allow downloads from other sites (CORS), or the network failed. ` +
    `Download the file yourself from ${preset.official} and pick it with "Checkpoint file" (or drop it on the page).`
  );
}

/**
 * Adds the model menu (a select of the presets with their size and backend, and a Load button)
 * before `anchor`. `onPick` loads a preset.
 */
export function mountModelMenu(anchor: HTMLElement, onPick: (preset: ModelPreset) => void): HTMLSelectElement {
  const row = document.createElement("div");
  row.className = "row model-menu";
  const select = document.createElement("select");
  select.id = "model-preset";
  select.title = "Official checkpoints";
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "Official checkpoint…";
  select.append(none);
  for (const p of MODEL_PRESETS) {
    const o = document.createElement("option");
    o.value = p.id;
    o.textContent = `${p.label} (${p.file}, ${p.size})`;
    o.title = `Fits: ${p.backend}. Official: ${p.official}`;
    select.append(o);
  }
  const button = document.createElement("button");
  button.id = "model-preset-load";
  button.textContent = "Download";
  button.disabled = true;
  const note = document.createElement("span");
  note.id = "model-preset-note";
  note.className = "hint";
  select.addEventListener("change", () => {
    const p = presetNamed(select.value);
    button.disabled = !p;
    note.textContent = p ? `${p.size}; fits ${p.backend}.` : "";
  });
  button.addEventListener("click", () => {
    const p = presetNamed(select.value);
    if (p) onPick(p);
  });
  row.append(select, button, note);
  anchor.before(row);
  return select;
}
