// sam-browser: Segment Anything in the browser (Rust -> WebAssembly, WebGPU or CPU), in a Web Worker.
export { SamClient, SamError } from "./client.js";
export type * from "./types.js";
export { maskToImageData, maskBBox, maskArea, cutout } from "./masks.js";
export type { Rgba } from "./masks.js";
