/**
 * The host side of virtio-vsock: byte streams to host applications. The
 * device speaks the vsock protocol with the guest; a backend only moves bytes
 * (Firecracker's Unix-socket convention lives in src/backends/unix-vsock.ts).
 */

/** One host byte stream as the device drives it. */
export interface VsockHostStream {
  /** Queues `data` for the host application; `done` runs once it has left our buffers (this is what advances fwd_cnt). */
  write(data: Uint8Array, done: () => void): void;
  /** The guest will send no more: end the host's read side once written data is out. */
  end(): void;
  /** The connection is over: flush written data, then close both directions. No event follows. */
  close(): void;
  /** Abort: drop queued data and close. No event follows. */
  destroy(): void;
  /** Stop / resume delivering `data` events (host → guest flow control). */
  pause(): void;
  resume(): void;
}

/** What a backend tells the device about one stream. */
export interface VsockStreamEvents {
  /** The host application accepted a guest's connection (guest-initiated streams only). */
  connected(): void;
  /** Bytes from the host application. */
  data(chunk: Uint8Array): void;
  /** The host application will send no more (half close). */
  end(): void;
  /** The stream is gone (closed by the host, failed to connect, or failed). No event follows. */
  close(error?: Error): void;
}

/** A stream a host application opened towards a guest port. */
export interface VsockHostInitiated extends VsockHostStream {
  /** The guest accepted: tell the application, naming the host-side port. */
  accepted(localPort: number): void;
}

/** The device as the backend sees it. */
export interface VsockHost {
  /**
   * A host application wants guest port `port`. Returns the sink for the
   * stream's events, or undefined when refused (the backend then closes it).
   */
  connectToGuest(port: number, stream: VsockHostInitiated): VsockStreamEvents | undefined;
}

export interface VsockBackend {
  /** Starts accepting host-initiated connections for `host`. */
  start(host: VsockHost): void;
  /** Opens a stream to the host service on `port` for a guest; the outcome arrives as `connected` or `close`. */
  connect(port: number, events: VsockStreamEvents): VsockHostStream;
}
