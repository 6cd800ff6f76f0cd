/**
 * Electron packs an app into an asar archive, from which nothing native can run: the addon, the libraries and
 * backend modules beside it (found through the addon's own folder) and ffmpeg must be unpacked next to it
 * (electron-builder `asarUnpack`, Forge `packagerConfig.asar.unpack`). A path computed from a module inside the
 * archive still says `…/app.asar/…`; this is the one rule that turns it into the unpacked copy's path.
 *
 * @internal
 * @module
 */
import { sep } from "node:path";

/** `…/app.asar/…` → `…/app.asar.unpacked/…` (every occurrence is the same archive); other paths unchanged. */
export function unpackedPath(path: string, separator: string = sep): string {
    const packed = `${separator}app.asar${separator}`;
    return path.includes(packed) ? path.split(packed).join(`${separator}app.asar.unpacked${separator}`) : path;
}
