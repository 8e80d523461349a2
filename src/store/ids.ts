import { randomBytes } from 'node:crypto';

/** 128 random bits, base64url: unguessable, and never derived from a name or the content. */
export const newImageId = (): string => randomBytes(16).toString('base64url');

/** A malformed id is answered like a missing one (404) without asking the store. */
export const isImageId = (value: string): boolean => /^[A-Za-z0-9_-]{22}$/.test(value);
