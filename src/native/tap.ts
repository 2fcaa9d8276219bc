/**
 * TAP devices (<linux/if_tun.h>): attach to an existing tap interface through
 * /dev/net/tun. Values checked against the kernel headers by
 * test/backends/tap.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { NativeError, O_CLOEXEC, O_RDWR, close, ioctl, ioctlBuf, open } from './libc.js';

/** _IOW('T', 202, int): attach the fd to the interface named in a struct ifreq. */
export const TUNSETIFF = 0x400454ca;
/** _IOW('T', 208, unsigned int): which offloads the kernel may hand us (TUN_F_* bits). */
export const TUNSETOFFLOAD = 0x400454d0;
/** _IOW('T', 216, int): size of the virtio-net header in front of each frame. */
export const TUNSETVNETHDRSZ = 0x400454d8;
/** ifr_flags: layer-2 device (Ethernet frames), as opposed to IFF_TUN (IP packets). */
export const IFF_TAP = 0x0002;
/** ifr_flags: no struct tun_pi (4-byte packet info) in front of frames. */
export const IFF_NO_PI = 0x1000;
/** ifr_flags: a struct virtio_net_hdr precedes every frame, both ways. */
export const IFF_VNET_HDR = 0x4000;
/** sizeof(struct ifreq) on x86-64. */
export const IFREQ_SIZE = 40;
/** offsetof(struct ifreq, ifr_flags): after the 16-byte ifr_name. */
export const IFREQ_FLAGS = 16;
/** IFNAMSIZ: interface names are at most 15 bytes plus the terminating NUL. */
export const IFNAMSIZ = 16;
/** <fcntl.h> O_NONBLOCK: reads return EAGAIN instead of sleeping. */
export const O_NONBLOCK = 0o4000;
/** sizeof(struct virtio_net_hdr_v1) (virtio 1.2 §5.1.6): what the tap and the guest both put in front of frames. */
export const VNET_HDR_V1_SIZE = 12;

/** Why a tap could not be opened, with the administrator's fix in the message. */
export class TapError extends Error {
  override name = 'TapError';
  constructor(
    readonly tap: string,
    readonly reason: 'name' | 'missing' | 'not-tap' | 'permission' | 'busy' | 'system',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`tap ${tap}: ${message}`, options);
  }
}

/** What `/sys/class/net/NAME/tun_flags` says: undefined when NAME is not a tun/tap interface. */
function tunFlags(name: string): number | undefined {
  const path = `/sys/class/net/${name}/tun_flags`;
  if (!existsSync(path)) return undefined;
  return Number.parseInt(readFileSync(path, 'utf8').trim(), 16);
}

/** Checks an interface name the way the kernel's dev_valid_name does. */
function checkName(name: string): void {
  // dev_valid_name: 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
  if (name.length === 0 || Buffer.byteLength(name) >= IFNAMSIZ || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new TapError(name, 'name', `not a valid interface name (1..${IFNAMSIZ - 1} bytes, no '/', ':' or spaces)`);
  }
}

/**
 * Opens the existing tap `name` (created by the administrator with
 * `ip tuntap add dev NAME mode tap`) in non-blocking mode, frames preceded by
 * a 12-byte virtio_net_hdr_v1 and no offloads. Returns the fd.
 *
 * An absent interface is refused rather than created: TUNSETIFF with
 * CAP_NET_ADMIN would silently make a new, unconfigured, non-persistent tap.
 */
export function openTap(name: string): number {
  checkName(name);
  const flags = tunFlags(name);
  if (flags === undefined) {
    if (existsSync(`/sys/class/net/${name}`)) throw new TapError(name, 'not-tap', 'is a network interface but not a tun/tap device');
    throw new TapError(name, 'missing', `no such interface; create it with: ip tuntap add dev ${name} mode tap`);
  }
  if (!(flags & IFF_TAP)) throw new TapError(name, 'not-tap', `is a tun (layer 3) device, not a tap; recreate it with: ip tuntap add dev ${name} mode tap`);
  let fd: number;
  try {
    fd = open('/dev/net/tun', O_RDWR | O_CLOEXEC | O_NONBLOCK);
  } catch (e) {
    throw explain(name, e, 'open /dev/net/tun');
  }
  try {
    const ifr = new Uint8Array(IFREQ_SIZE);
    ifr.set(Buffer.from(name));
    new DataView(ifr.buffer).setUint16(IFREQ_FLAGS, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    ioctlBuf(fd, TUNSETIFF, ifr, `TUNSETIFF ${name}`);
    const size = new Uint8Array(4);
    new DataView(size.buffer).setInt32(0, VNET_HDR_V1_SIZE, true);
    ioctlBuf(fd, TUNSETVNETHDRSZ, size, 'TUNSETVNETHDRSZ');
    // No TUN_F_CSUM/TSO/UFO: the kernel finishes checksums and segments before frames reach us.
    ioctl(fd, TUNSETOFFLOAD, 0, 'TUNSETOFFLOAD');
    return fd;
  } catch (e) {
    close(fd);
    throw explain(name, e, 'attach');
  }
}

function explain(name: string, e: unknown, what: string): Error {
  if (!(e instanceof NativeError)) return e instanceof Error ? e : new Error(String(e));
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return new TapError(name, 'permission', `${what}: permission denied; run as root, or give the tap to this user: ip tuntap add dev ${name} mode tap user $(id -un)`, { cause: e });
    case 'EBUSY':
      return new TapError(name, 'busy', `${what}: already attached to another process (one VM per tap)`, { cause: e });
    case 'ENOENT':
    case 'ENODEV':
      return new TapError(name, 'system', `${what}: the tun driver is not available (modprobe tun)`, { cause: e });
    default:
      return new TapError(name, 'system', `${what}: ${e.message}`, { cause: e });
  }
}
