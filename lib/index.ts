/**
 * vidllama: ask questions about images, video files and live video on your own machine.
 *
 * @module
 */
export * from "./errors.js";
