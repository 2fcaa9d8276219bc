import { parentPort, workerData } from 'node:worker_threads';
import {
  KVM, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_INTERNAL_ERROR, KVM_SYSTEM_EVENT, KERNEL_SIGSET_BYTES, MAP_SHARED, NativeError,
  PROT_READ, PROT_WRITE, SIG_BLOCK, close, errnoName, errnoValue, exitReasonName, gettid, ioctl, ioctlBuf, ioctlRaw,
  kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_msrs, kvm_regs, kvm_run, kvm_signal_mask, kvm_sregs, mmap,
  munmap, pthreadSigmask, schedYield, sigpoll, sigset, view,
} from '../../native/index.js';
import type { Registers, VmStop } from '../engine.js';
import {
  CMD_EXIT, CMD_HOLD, CMD_PAUSE, CMD_STOP, DATA_BYTES, REQ_MMIO, REQ_PIO, STAT, STATE_IDLE, STATE_REQUEST, W,
  mailbox, type ExitKind, type VcpuMessage, type VcpuWorkerData,
} from './mailbox.js';
import { BOOT_MSRS, bootFpu, decodeRegs, encodeRegs, encodeSregs, wireLintPins } from './state.js';

/**
 * One vCPU: this worker thread creates it, owns its fd and kvm_run mapping,
 * and loops on KVM_RUN. Everything runs synchronously; the machine thread
 * talks to it through the mailbox's command word and kicks it out of KVM_RUN
 * with a thread-directed signal (see README.md, "Kicking a vCPU").
 */

const port = parentPort!;
// These load koffi and bind libc: a worker started ahead of its VM has that
// done by the time its set-up data arrives.
const EINTR = errnoValue('EINTR') ?? 4;
const EAGAIN = errnoValue('EAGAIN') ?? 11;
const tid = gettid();

/**
 * The set-up data: workerData of a worker started for its VM, or the first
 * message to one started ahead of it (KvmEngine.prestartVcpus).
 */
function setupData(): VcpuWorkerData | Promise<VcpuWorkerData> {
  if (workerData != null) return workerData as VcpuWorkerData;
  const loaded: VcpuMessage = { type: 'loaded' };
  port.postMessage(loaded);
  return new Promise((resolve) => port.once('message', (m: VcpuWorkerData) => resolve(m)));
}

const data = await setupData();
const mb = mailbox(data.mailbox);
const { words, stats } = mb;
const doorbell = new Int32Array(data.doorbell);
const spinMs = data.spinMicros / 1000;
const cpu = data.cpu;

function post(msg: VcpuMessage): void {
  port.postMessage(msg);
}

function count(kind: ExitKind | 'kvm_run'): void {
  stats[STAT[kind]]!++;
}

let vcpuFd = -1;
let runAddress = 0n;
let run: DataView;
let runBytes: Uint8Array;
const kickSet = sigset(data.kickSignal);

function setup(): number {
  // Blocked outside KVM_RUN, unblocked inside it (KVM_SET_SIGNAL_MASK): a
  // kick that lands between two KVM_RUN calls stays pending and makes the
  // next KVM_RUN return EINTR at once, so no kick is ever lost.
  const before = pthreadSigmask(SIG_BLOCK, kickSet);
  vcpuFd = ioctl(data.vmFd, KVM.CREATE_VCPU, cpu, `vCPU ${cpu}: KVM_CREATE_VCPU`);
  runAddress = mmap(data.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, 0);
  runBytes = new Uint8Array(view(runAddress, data.runSize));
  run = new DataView(runBytes.buffer);

  const mask = new Uint8Array(kvm_signal_mask.size + KERNEL_SIGSET_BYTES);
  new DataView(mask.buffer).setUint32(kvm_signal_mask.fields.len!.offset, KERNEL_SIGSET_BYTES, true);
  mask.set(before.subarray(0, KERNEL_SIGSET_BYTES), kvm_signal_mask.size);
  const bit = data.kickSignal - 1;
  mask[kvm_signal_mask.size + (bit >> 3)]! &= ~(1 << (bit & 7));
  ioctlBuf(vcpuFd, KVM.SET_SIGNAL_MASK, mask, `vCPU ${cpu}: KVM_SET_SIGNAL_MASK`);

  ioctlBuf(vcpuFd, KVM.SET_CPUID2, data.cpuid, `vCPU ${cpu}: KVM_SET_CPUID2`);
  setMsrs();
  const lapic = new Uint8Array(kvm_lapic_state.size);
  ioctlBuf(vcpuFd, KVM.GET_LAPIC, lapic, `vCPU ${cpu}: KVM_GET_LAPIC`);
  ioctlBuf(vcpuFd, KVM.SET_LAPIC, wireLintPins(lapic), `vCPU ${cpu}: KVM_SET_LAPIC`);

  if (data.boot) {
    ioctlBuf(vcpuFd, KVM.SET_FPU, bootFpu(), `vCPU ${cpu}: KVM_SET_FPU`);
    const sregs = new Uint8Array(kvm_sregs.size);
    ioctlBuf(vcpuFd, KVM.GET_SREGS, sregs, `vCPU ${cpu}: KVM_GET_SREGS`);
    ioctlBuf(vcpuFd, KVM.SET_SREGS, encodeSregs(data.boot.sregs, sregs), `vCPU ${cpu}: KVM_SET_SREGS (boot CPU state refused)`);
    ioctlBuf(vcpuFd, KVM.SET_REGS, encodeRegs(data.boot.regs), `vCPU ${cpu}: KVM_SET_REGS`);
  }
  const mp = new Uint8Array(kvm_mp_state.size);
  ioctlBuf(vcpuFd, KVM.GET_MP_STATE, mp, `vCPU ${cpu}: KVM_GET_MP_STATE`);
  return new DataView(mp.buffer).getUint32(0, true);
}

function setMsrs(): void {
  const buf = new Uint8Array(kvm_msrs.size + BOOT_MSRS.length * kvm_msr_entry.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(kvm_msrs.fields.nmsrs!.offset, BOOT_MSRS.length, true);
  BOOT_MSRS.forEach((m, i) => {
    const at = kvm_msrs.size + i * kvm_msr_entry.size;
    dv.setUint32(at + kvm_msr_entry.fields.index!.offset, m.index, true);
    dv.setBigUint64(at + kvm_msr_entry.fields.data!.offset, m.value, true);
  });
  // KVM_SET_MSRS returns how many entries it set, stopping at the first it refuses.
  const n = ioctlBuf(vcpuFd, KVM.SET_MSRS, buf, `vCPU ${cpu}: KVM_SET_MSRS`);
  if (n !== BOOT_MSRS.length) throw new Error(`vCPU ${cpu}: KVM_SET_MSRS refused ${BOOT_MSRS[n]?.name ?? `entry ${n}`}`);
}

function regs(): Registers | undefined {
  const buf = new Uint8Array(kvm_regs.size);
  try {
    ioctlBuf(vcpuFd, KVM.GET_REGS, buf);
    return decodeRegs(buf);
  } catch {
    return undefined;
  }
}

const R = kvm_run.fields;
const off = (f: string) => R[f]!.offset;
const EXIT_REASON = off('exit_reason');
const IO_DIRECTION = off('io.direction');
const IO_SIZE = off('io.size');
const IO_PORT = off('io.port');
const IO_COUNT = off('io.count');
const IO_DATA_OFFSET = off('io.data_offset');
const MMIO_ADDR = off('mmio.phys_addr');
const MMIO_DATA = off('mmio.data');
const MMIO_LEN = off('mmio.len');
const MMIO_IS_WRITE = off('mmio.is_write');

/** Hands a request to the machine thread and blocks until it replies (or the VM is torn down). */
function request(): boolean {
  Atomics.store(words, W.STATE, STATE_REQUEST);
  Atomics.add(doorbell, 0, 1);
  Atomics.notify(doorbell, 0);
  // The machine thread usually answers within microseconds; a futex sleep
  // and wake-up costs more than that on a virtualised host.
  if (spinMs > 0) {
    const until = performance.now() + spinMs;
    while (Atomics.load(words, W.STATE) === STATE_REQUEST && performance.now() < until) schedYield();
  }
  while (Atomics.load(words, W.STATE) === STATE_REQUEST) {
    if (Atomics.load(words, W.COMMAND) === CMD_EXIT) return false;
    Atomics.wait(words, W.STATE, STATE_REQUEST);
  }
  return true;
}

function pio(): boolean {
  const size = run.getUint8(IO_SIZE);
  const n = run.getUint32(IO_COUNT, true);
  const at = Number(run.getBigUint64(IO_DATA_OFFSET, true));
  const bytes = size * n;
  if (bytes > DATA_BYTES || at + bytes > runBytes.length) return fail(`KVM_EXIT_IO: ${n} x ${size} bytes at offset ${at} overflow the data page`);
  const isWrite = run.getUint8(IO_DIRECTION) === KVM_EXIT_IO_OUT;
  words[W.KIND] = REQ_PIO;
  words[W.ADDR_LO] = run.getUint16(IO_PORT, true);
  words[W.ADDR_HI] = 0;
  words[W.SIZE] = size;
  words[W.WRITE] = isWrite ? 1 : 0;
  words[W.COUNT] = n;
  if (isWrite) mb.data.set(runBytes.subarray(at, at + bytes));
  if (!request()) return false;
  if (!isWrite) runBytes.set(mb.data.subarray(0, bytes), at);
  Atomics.store(words, W.STATE, STATE_IDLE);
  return true;
}

function mmio(): boolean {
  const len = run.getUint32(MMIO_LEN, true);
  if (len > 8) return fail(`KVM_EXIT_MMIO: access of ${len} bytes`);
  const addr = run.getBigUint64(MMIO_ADDR, true);
  const isWrite = run.getUint8(MMIO_IS_WRITE) !== 0;
  words[W.KIND] = REQ_MMIO;
  words[W.ADDR_LO] = Number(addr & 0xffff_ffffn) | 0;
  words[W.ADDR_HI] = Number(addr >> 32n) | 0;
  words[W.SIZE] = len;
  words[W.WRITE] = isWrite ? 1 : 0;
  words[W.COUNT] = 1;
  if (isWrite) mb.data.set(runBytes.subarray(MMIO_DATA, MMIO_DATA + len));
  if (!request()) return false;
  if (!isWrite) runBytes.set(mb.data.subarray(0, len), MMIO_DATA);
  Atomics.store(words, W.STATE, STATE_IDLE);
  return true;
}

/** Reports why this vCPU cannot go on; the machine thread stops the VM. */
function stop(s: VmStop): false {
  post({ type: 'stop', cpu, stop: s });
  return false;
}

function fail(message: string): false {
  return stop({ reason: 'engine-error', cpu, message: `vCPU ${cpu}: ${message}`, regs: regs() });
}

const INTERNAL_DATA = off('internal.data');
/** emulation_failure.flags bit 0: insn_size and insn_bytes are valid. */
const EMULATION_FLAG_INSTRUCTION_BYTES = 1n;

/** What KVM adds to an internal error: the instruction bytes of an emulation failure, else the raw data words. */
function internalDetail(sub: number): string {
  const ndata = Math.min(run.getUint32(off('internal.ndata'), true), 16);
  if (ndata === 0) return '';
  const rip = regs()?.rip;
  const at = rip === undefined ? '' : ` at rip 0x${rip.toString(16)}`;
  if (sub === 1 && ndata >= 3) {
    const flags = run.getBigUint64(INTERNAL_DATA, true);
    if (!(flags & EMULATION_FLAG_INSTRUCTION_BYTES)) return `${at} (instruction bytes unknown: the code is not in RAM?)`;
    const size = Math.min(run.getUint8(INTERNAL_DATA + 8), 15);
    const bytes = [...runBytes.subarray(INTERNAL_DATA + 9, INTERNAL_DATA + 9 + size)].map((b) => b.toString(16).padStart(2, '0'));
    return `${at}, instruction bytes ${bytes.join(' ') || '(none)'}`;
  }
  const words: string[] = [];
  for (let i = 0; i < ndata; i++) words.push(`0x${run.getBigUint64(INTERNAL_DATA + i * 8, true).toString(16)}`);
  return `${at}; data ${words.join(' ')}`;
}

/** Handles one KVM exit; false when this vCPU must leave the run loop. */
function exit(): boolean {
  const reason = run.getUint32(EXIT_REASON, true);
  switch (reason) {
    case KVM_EXIT.IO:
      count('io');
      return pio();
    case KVM_EXIT.MMIO:
      count('mmio');
      return mmio();
    case KVM_EXIT.INTR:
      count('intr');
      return true;
    case KVM_EXIT.HLT:
      // With the in-kernel LAPIC, HLT is handled inside KVM; seeing it means the irqchip is missing.
      count('hlt');
      return fail('KVM_EXIT_HLT although the in-kernel irqchip handles HLT');
    case KVM_EXIT.SHUTDOWN:
      count('shutdown');
      return stop({ reason: 'triple-fault', cpu, regs: regs() });
    case KVM_EXIT.SYSTEM_EVENT: {
      count('system_event');
      const type = run.getUint32(off('system_event.type'), true);
      if (type === KVM_SYSTEM_EVENT.SHUTDOWN) return stop({ reason: 'poweroff' });
      if (type === KVM_SYSTEM_EVENT.RESET) return stop({ reason: 'reset' });
      return fail(`KVM_EXIT_SYSTEM_EVENT type ${type}${type === KVM_SYSTEM_EVENT.CRASH ? ' (guest crash)' : ''}`);
    }
    case KVM_EXIT.INTERNAL_ERROR: {
      count('internal_error');
      const sub = run.getUint32(off('internal.suberror'), true);
      const what = KVM_INTERNAL_ERROR[sub] ?? `suberror ${sub}`;
      return fail(`KVM_EXIT_INTERNAL_ERROR: ${what}${internalDetail(sub)}`);
    }
    case KVM_EXIT.FAIL_ENTRY: {
      count('fail_entry');
      const hw = run.getBigUint64(off('fail_entry.hardware_entry_failure_reason'), true);
      return fail(`KVM_EXIT_FAIL_ENTRY: the CPU refused to enter the guest (hardware reason 0x${hw.toString(16)}); the vCPU state is invalid`);
    }
    case KVM_EXIT.EXCEPTION:
      count('other');
      return fail(`KVM_EXIT_EXCEPTION: exception ${run.getUint32(off('ex.exception'), true)}, error code 0x${run.getUint32(off('ex.error_code'), true).toString(16)}`);
    default:
      count('other');
      return fail(`unhandled ${exitReasonName(reason)}`);
  }
}

function drainKicks(): void {
  while (sigpoll(kickSet) !== 0) {
    // Each pending kick is consumed; the command word says why it came.
  }
}

function waitWhile(command: number): void {
  while (Atomics.load(words, W.COMMAND) === command) Atomics.wait(words, W.COMMAND, command);
}

/**
 * Holds still while the command is PAUSE, acknowledging every pause request:
 * a resume and a new pause can both land before this thread wakes, and the
 * second pause must still be answered.
 */
function paused(): void {
  drainKicks();
  let seq = Atomics.load(words, W.PAUSE_SEQ);
  post({ type: 'paused', cpu, seq });
  // The machine stores PAUSE_SEQ before the command word, so reading the
  // command first and the sequence second never misses a new pause. The wait
  // is bounded: a resume followed at once by a new pause takes the command
  // word PAUSE → RUN → PAUSE while this thread is between its checks and
  // Atomics.wait, and a wait on "still PAUSE" would then sleep through both.
  while (Atomics.load(words, W.COMMAND) === CMD_PAUSE) {
    const now = Atomics.load(words, W.PAUSE_SEQ);
    if (now !== seq) {
      seq = now;
      post({ type: 'paused', cpu, seq });
    }
    Atomics.wait(words, W.COMMAND, CMD_PAUSE, PAUSE_RECHECK_MS);
  }
}

/** How often a paused vCPU thread looks again for a pause it may have slept through. */
const PAUSE_RECHECK_MS = 20;

/** Runs until told to stop, or until this vCPU reports a stop. */
function loop(): void {
  for (;;) {
    const cmd = Atomics.load(words, W.COMMAND);
    if (cmd === CMD_STOP || cmd === CMD_EXIT) return;
    if (cmd === CMD_PAUSE) {
      paused();
      continue;
    }
    count('kvm_run');
    const r = ioctlRaw(vcpuFd, KVM.RUN);
    if (r < 0) {
      if (-r === EINTR || -r === EAGAIN) {
        count('intr');
        drainKicks();
        continue;
      }
      fail(`KVM_RUN: ${errnoName(-r)}`);
      return;
    }
    if (!exit()) return;
  }
}

function teardown(): void {
  if (runAddress) munmap(runAddress, data.runSize);
  if (vcpuFd >= 0) close(vcpuFd);
  vcpuFd = -1;
  runAddress = 0n;
}

function main(): void {
  let mpState: number;
  try {
    mpState = setup();
  } catch (e) {
    teardown();
    post({ type: 'setup-failed', cpu, message: e instanceof NativeError || e instanceof Error ? e.message : String(e) });
    return;
  }
  post({ type: 'ready', cpu, tid, mpState });
  waitWhile(CMD_HOLD);
  loop();
  // Park until the machine stops the VM (this vCPU may have been the one to report why), then until close.
  for (;;) {
    const cmd = Atomics.load(words, W.COMMAND);
    if (cmd === CMD_STOP || cmd === CMD_EXIT) break;
    Atomics.wait(words, W.COMMAND, cmd);
  }
  drainKicks();
  post({ type: 'stopped', cpu });
  waitWhile(CMD_STOP);
  teardown();
}

main();
