export { writeNewc, CpioError, type CpioEntry, type CpioOptions } from './cpio.js';
export { treeEntries } from './tree.js';
export { resolveModules, readModinfo, decompressModule, type ModuleFile, type ModuleSet } from './modules.js';
export { initramfsEntries, buildInitramfs, type InitramfsInput } from './initramfs.js';
export {
  buildImage,
  ensureDefaultImage,
  verifyImage,
  defaultImageDir,
  IMAGE_FORMAT,
  DEFAULT_PACKAGES,
  GUEST_MODULES,
  type ImageBuildOptions,
  type ImageManifest,
  type BuiltImage,
  type DefaultImage,
} from './build.js';
export { makeDiskImage, type DiskOptions } from './disk.js';
export { guestCommandParam } from './guest-cmdline.js';
export { ImageError, type ImageErrorKind } from './errors.js';
