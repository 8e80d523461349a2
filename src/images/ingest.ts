import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { sha256OfBytes } from '../digest.js';
import { AppError, isAppError, quotaExceeded } from '../errors.js';
import { writeError } from '../origins/file.js';
import { checkOriginKey } from '../origins/key.js';
import type { Origin } from '../origins/origin.js';
import { OriginObjectTooLarge } from '../origins/read-body.js';
import { isImageId, newImageId } from '../store/ids.js';
import type { ImageRecord, Store, Visibility } from '../store/store.js';
import { inspectBytes, inspectImage } from './inspect.js';

/**
 * Taking in a new original, from an HTTP upload or `pixgate import`. The bytes go to a temp
 * file first (counted, capped, hashed), are judged by their content alone, are moved into the
 * origin atomically, and only then get a row: a refused or crashed upload leaves no partial
 * original and no orphan row. Between the move and the row, a mark in the temp dir names the
 * original, so that one a crash left without a row is found and removed (sweepTempFiles).
 */

export interface IngestOptions {
  readonly store: Store;
  readonly origin: Origin;
  /** Temp files live here: on the same filesystem as file origins, so the move is a rename. */
  readonly tempDir: string;
  readonly maxUploadBytes: number;
  readonly maxInputPixels: number;
  /** The most frames an animated render decodes: the upload decodes them all once. */
  readonly maxFrames: number;
  readonly now: () => number;
  /** How often a mark of work in progress is touched, so no sweep finds it stale; tests shorten it. */
  readonly markRefreshMs?: number;
}

export interface NewImage {
  readonly owner: string;
  readonly visibility: Visibility;
  /**
   * The owner's storage quota (SPEC §6): checked once the size is known, before the bytes are
   * judged or stored, and again as the row is inserted, so that concurrent uploads cannot pass
   * it together. Over it: 403 `quota_exceeded`, nothing kept.
   */
  readonly quotaBytes?: number;
}

/** Refuses an upload of `bytes` that would take `owner` past `quotaBytes`. */
export async function checkQuota(store: Store, owner: string, bytes: number, quotaBytes: number) {
  if ((await store.ownerBytes(owner)) + bytes > quotaBytes) throw quotaExceeded(quotaBytes);
}

export const tooLarge = (maxBytes: number) =>
  new AppError('payload_too_large', `The image is larger than the limit of ${maxBytes} bytes`);

/**
 * A temp file nobody has written to for this long was left by a crash. An upload still arriving
 * writes with every chunk, so its mtime stays fresh; judging and moving a received file takes
 * seconds, not an hour.
 */
const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * A mark is touched this often while its work goes on: another process's sweep (a second server,
 * `pixgate import`) cannot tell our work from a crash's leftovers but by the mtime, and an origin
 * write can outlast STALE_TEMP_MS (a large upload to S3 over a poor link). Found stale between the
 * write and the row, the mark's original was deleted, then recorded: a 201 for an image gone.
 */
const MARK_REFRESH_MS = 60 * 1000;

const ignore = () => {};

/** Temp files of uploads still arriving, or left by a crash: `upload-<random>`. */
const UPLOAD_PREFIX = 'upload-';
/**
 * `pending-<id>`: the original of image `id` is being moved into the origin and recorded. Made
 * before the move, removed once the row is in (or the original gone again); one left by a crash
 * names an original that may have no row.
 */
const PENDING_PREFIX = 'pending-';
/**
 * `deleting-<id>`: image `id` is being deleted (Store.deleteImage with its original). Removed once
 * that has succeeded or changed nothing; one left by a crash, or by a commit that failed after the
 * original went (a full disk), names a delete cut short, which may have removed the original and
 * not the row.
 */
const DELETING_PREFIX = 'deleting-';

/** A step on our side of an upload (the temp file): its failure is ours, never the client's. */
const ours = <T>(step: Promise<T>): Promise<T> =>
  step.catch((error: unknown) => {
    throw writeError(error, 'temp file');
  });

/** Uploads are sharded by the first two characters of the id, so no directory grows huge. */
export const uploadKey = (id: string) => `${id.slice(0, 2)}/${id}`;

export function createIngest(options: IngestOptions) {
  const { store, origin, tempDir } = options;

  /**
   * Paths in the temp dir this process is at work on now (counted: two deletes of one image share
   * a mark). A sweep never touches them, however old the wall clock makes them look: a clock that
   * jumps ahead (a VM resumed, NTP stepping a clock far behind) ages every file at once. They are
   * touched every MARK_REFRESH_MS meanwhile, for other processes' sweeps, which see only mtimes.
   */
  const busy = new Map<string, number>();
  async function whileBusy<T>(path: string, work: () => Promise<T>): Promise<T> {
    busy.set(path, (busy.get(path) ?? 0) + 1);
    const touch = () => {
      const now = new Date();
      // Gone meanwhile (moved into the origin, or removed): nothing to keep fresh.
      utimes(path, now, now).catch(ignore);
    };
    const refresher = setInterval(touch, options.markRefreshMs ?? MARK_REFRESH_MS);
    refresher.unref();
    try {
      return await work();
    } finally {
      clearInterval(refresher);
      const left = (busy.get(path) ?? 1) - 1;
      if (left === 0) busy.delete(path);
      else busy.set(path, left);
    }
  }

  /**
   * Streams into a temp file, refusing beyond the cap; returns its path and SHA-256. A failure
   * is told by its side: reading the source is the client's (it went away or sent a broken
   * body: 400), making and writing the temp file is ours (507 when the disk is full, otherwise
   * a 500 with the cause in the log). Hence a loop with each side's step in sight, not a
   * pipeline, which hands the first error of either side to both.
   */
  async function receive(
    source: Readable,
    path: string,
  ): Promise<{ path: string; sha256: string; bytes: number }> {
    // Listened to before the first await: a source that fails meanwhile (a file `pixgate import`
    // cannot open) would otherwise be an 'error' event nobody hears, which ends the process. The
    // stream keeps the error, and the loop below still fails with it.
    source.on('error', ignore);
    const hash = createHash('sha256');
    let bytes = 0;
    let file: FileHandle | undefined;
    try {
      await ours(mkdir(tempDir, { recursive: true }));
      file = await ours(open(path, 'wx', 0o600));
      for await (const chunk of source as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > options.maxUploadBytes) throw tooLarge(options.maxUploadBytes);
        hash.update(chunk);
        // writeFile: the whole chunk at the current position, however many writes that takes.
        await ours(file.writeFile(chunk));
      }
      await ours(file.close());
    } catch (error) {
      // Closing again is a no-op for a handle already closed.
      await file?.close().catch(ignore);
      await rm(path, { force: true });
      if (error instanceof AppError) throw error;
      // Anything else came from reading the source: nothing was kept.
      const code = (error as NodeJS.ErrnoException).code;
      throw new AppError('invalid_request', 'The upload was interrupted', { detail: code, cause: error });
    }
    if (bytes === 0) {
      await rm(path, { force: true });
      throw new AppError('unsupported_media_type', 'The upload is empty');
    }
    return { path, sha256: hash.digest('base64url'), bytes };
  }

  /** Judges a received temp file and stores it; the temp file is consumed either way. */
  async function keep(
    received: { path: string; sha256: string; bytes: number },
    image: NewImage,
  ): Promise<ImageRecord> {
    let facts: Awaited<ReturnType<typeof inspectImage>>;
    try {
      if (image.quotaBytes !== undefined) {
        await checkQuota(store, image.owner, received.bytes, image.quotaBytes);
      }
      facts = await inspectImage(received.path, options);
    } catch (error) {
      await rm(received.path, { force: true });
      throw error;
    }
    const id = newImageId();
    const key = uploadKey(id);
    const pending = join(tempDir, `${PENDING_PREFIX}${id}`);
    // Under its mark from here: the move into the origin, and the row.
    return whileBusy(pending, async () => {
      try {
        await ours(writeFile(pending, `${key}\n`, { flag: 'wx', mode: 0o600 }));
      } catch (error) {
        await rm(received.path, { force: true });
        throw error;
      }
      try {
        await origin.write(key, received.path, facts.contentType);
      } catch (error) {
        // Nothing under the key, or the whole file (an S3 write that timed out here but completed
        // there): deleted either way, and the mark stays if that fails too.
        await origin.delete(key).then(() => rm(pending, { force: true }), ignore);
        throw error;
      }
      const record: ImageRecord = {
        id,
        owner: image.owner,
        visibility: image.visibility,
        version: 1,
        originKey: key,
        originEtag: received.sha256,
        format: facts.format,
        width: facts.width,
        height: facts.height,
        bytes: received.bytes,
        hasAlpha: facts.hasAlpha,
        pages: facts.pages,
        placeholder: facts.placeholder,
        createdAt: new Date(options.now()),
      };
      try {
        await store.insertImage(record, { ownerQuotaBytes: image.quotaBytes });
      } catch (error) {
        // The caller hears why it was not recorded (503, 403 quota_exceeded), not how the clean-up
        // went: an original the origin would not delete now (S3 down) keeps its mark, and a sweep
        // removes it later.
        await origin.delete(key).then(() => rm(pending, { force: true }), ignore);
        throw error;
      }
      // Recorded. A mark that cannot go now is harmless: a sweep finds the row and only drops it.
      await rm(pending, { force: true }).catch(ignore);
      return record;
    });
  }

  /**
   * Deletes the image's row and, for an upload, its original, as one (Store.deleteImage): if
   * either cannot go, nothing does. Only originals pixgate stored itself go; a registered one
   * belongs to the library it was found in (and may be registered twice), so it stays there.
   */
  function deleteImage(image: ImageRecord, onOriginDeleted = ignore): Promise<boolean> {
    const key = image.originKey;
    const beforeCommit =
      key === uploadKey(image.id) ? () => origin.delete(key).then(onOriginDeleted) : undefined;
    return store.deleteImage(image.id, { beforeCommit });
  }

  return {
    /**
     * DELETE of an image: its row and original (deleteImage above), under a mark that lets a
     * sweep finish a delete a crash cut short. Variants are the caller's (the cache): a finished
     * delete's are unreachable without the row and age out of the cache.
     */
    async delete(image: ImageRecord): Promise<boolean> {
      const mark = join(tempDir, `${DELETING_PREFIX}${image.id}`);
      return whileBusy(mark, async () => {
        // Best effort: a delete is never refused for want of the space to note it (a full disk).
        const marked = await mkdir(tempDir, { recursive: true })
          .then(() => writeFile(mark, '', { mode: 0o600 }))
          .then(
            () => true,
            () => false,
          );
        const unmark = async () => {
          if (marked) await rm(mark, { force: true }).catch(ignore);
        };
        let originDeleted = false;
        try {
          const deleted = await deleteImage(image, () => {
            originDeleted = true;
          });
          await unmark();
          return deleted;
        } catch (error) {
          // The commit can still fail once the original is gone (SQLITE_FULL): the row stays,
          // and so does the mark, for a sweep to finish the delete. Refused before anything
          // went, the mark has nothing more to tell.
          if (!originDeleted) await unmark();
          throw error;
        }
      });
    },
    /**
     * Registers an original that already sits in the origin, without copying it: the key is
     * checked (a plain relative path, key.ts), the bytes are read once, capped, and judged like
     * an upload's, and the row keeps the key and the origin's ETag (or the bytes' SHA-256).
     */
    async fromOrigin(source: string, image: NewImage): Promise<ImageRecord> {
      const key = checkOriginKey(source);
      const original = await origin
        .read(key, { maxBytes: options.maxUploadBytes })
        .catch((error: unknown) => {
          // Over the cap an upload has: refused as that upload would be, not as the origin failing.
          if (error instanceof OriginObjectTooLarge) throw tooLarge(options.maxUploadBytes);
          // Said of the key the admin named: the origin's "No such image" speaks of image ids.
          if (isAppError(error) && error.code === 'not_found') {
            throw new AppError('not_found', 'No such original in the origin', { cause: error });
          }
          throw error;
        });
      let facts: Awaited<ReturnType<typeof inspectBytes>>;
      let sha256: string;
      const bytes = original.body.length;
      try {
        facts = await inspectBytes(original.body, options);
        sha256 = await sha256OfBytes(original.body);
      } finally {
        original.release?.();
      }
      const record: ImageRecord = {
        id: newImageId(),
        owner: image.owner,
        visibility: image.visibility,
        version: 1,
        originKey: key,
        // An ETag goes back to clients quoted: only one made of plain visible characters is kept.
        originEtag: original.etag && /^[!#-~]{1,256}$/.test(original.etag) ? original.etag : sha256,
        format: facts.format,
        width: facts.width,
        height: facts.height,
        bytes,
        hasAlpha: facts.hasAlpha,
        pages: facts.pages,
        placeholder: facts.placeholder,
        createdAt: new Date(options.now()),
      };
      await store.insertImage(record);
      return record;
    },
    /**
     * An upload body: stream → temp file → judged → origin → row. `afterSource` runs once the
     * source has ended, before anything is judged or stored; throwing there refuses the upload.
     */
    async fromStream(
      source: Readable,
      image: NewImage,
      hooks: { afterSource?: () => Promise<void> } = {},
    ): Promise<ImageRecord> {
      const path = join(tempDir, `${UPLOAD_PREFIX}${randomBytes(12).toString('hex')}`);
      return whileBusy(path, async () => {
        const received = await receive(source, path);
        try {
          await hooks.afterSource?.();
        } catch (error) {
          await rm(received.path, { force: true });
          throw error;
        }
        return keep(received, image);
      });
    },
    /**
     * Cleans up after crashes, only what has been left alone for an hour (STALE_TEMP_MS), since
     * another process on the same data dir (a running server, `pixgate import`) may be at work
     * on its own files right now: temp files of uploads that never finished; pending marks,
     * whose original goes unless its row made it in; deleting marks, whose delete is finished.
     * Never throws: what cannot be settled now (the store or the origin down) stays for the
     * next sweep.
     */
    async sweepTempFiles(): Promise<void> {
      let names: string[];
      try {
        names = await readdir(tempDir);
      } catch {
        return;
      }
      // The wall clock, not the injected one: mtimes are wall-clock times.
      const staleBefore = Date.now() - STALE_TEMP_MS;
      const isStale = async (path: string) => {
        const modified = (await stat(path).catch(() => undefined))?.mtimeMs;
        // Gone meanwhile: its upload finished and moved it.
        return modified !== undefined && modified < staleBefore;
      };
      await Promise.all(
        names.map(async (name) => {
          const path = join(tempDir, name);
          if (busy.has(path)) return;
          if (name.startsWith(UPLOAD_PREFIX)) {
            if (await isStale(path)) await rm(path, { force: true }).catch(ignore);
            return;
          }
          const prefix = [PENDING_PREFIX, DELETING_PREFIX].find((start) => name.startsWith(start));
          const id = prefix === undefined ? '' : name.slice(prefix.length);
          if (!isImageId(id) || !(await isStale(path))) return;
          try {
            const row = await store.getImage(id);
            // An upload not recorded: its original goes.
            if (prefix === PENDING_PREFIX && !row) await origin.delete(uploadKey(id));
            // A delete cut short: it was asked for, and is finished as the route does it.
            if (prefix === DELETING_PREFIX && row) await deleteImage(row);
            await rm(path, { force: true });
          } catch {
            // The store or the origin cannot answer: the mark stays, for the next sweep.
          }
        }),
      );
    },
  };
}

export type Ingest = ReturnType<typeof createIngest>;
