/**
 * Reusable buffers for reading originals. A fresh multi-megabyte Buffer per transform makes V8
 * run full garbage collections for "external memory pressure" (measured: 92 in 20 s of cold
 * requests, about 10% of the cold path); buffers handed back after the render avoid that.
 * The pool keeps at most `maxBytes` of idle buffers, so it never holds much more than the
 * originals being processed at once.
 */
export interface PooledBuffer {
  /** Exactly the requested size; its bytes are stale until the caller fills them. */
  readonly buffer: Buffer;
  /** Hands the memory back; the buffer must not be used afterwards. Safe to call twice. */
  release(): void;
}

export interface BufferPool {
  take(size: number): PooledBuffer;
}

// Capacities are rounded up to a multiple of this, so originals of similar sizes share buffers.
const GRAIN = 1024 * 1024;

export function createBufferPool(maxBytes: number): BufferPool {
  const idle: Buffer[] = [];
  let idleBytes = 0;
  return {
    take(size) {
      const index = idle.findIndex((candidate) => candidate.length >= size);
      let backing: Buffer;
      if (index === -1) {
        backing = Buffer.allocUnsafeSlow(Math.max(GRAIN, Math.ceil(size / GRAIN) * GRAIN));
      } else {
        backing = idle.splice(index, 1)[0] as Buffer;
        idleBytes -= backing.length;
      }
      let released = false;
      return {
        buffer: backing.subarray(0, size),
        release() {
          if (released) return;
          released = true;
          if (idleBytes + backing.length > maxBytes) return;
          idle.push(backing);
          idleBytes += backing.length;
        },
      };
    },
  };
}
