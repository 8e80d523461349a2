import { AppError } from '../errors.js';

/**
 * An origin key must be a plain relative path inside the origin's root: no `..` or `.`
 * segments, nothing absolute, no scheme or `//host`, no backslashes, control characters or
 * percent-encoding (an encoded `%2e%2e` decoded by some later layer is how traversal slips in).
 * Keys made by pixgate pass trivially; keys given by an admin to `register` are checked here.
 */
export function checkOriginKey(key: string): string {
  const refuse = (why: string) => new AppError('invalid_request', `Invalid source key: ${why}`);
  if (key.length === 0 || key.length > 1024) throw refuse('expected 1..1024 characters');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f\\%]/.test(key))
    throw refuse('control characters, backslashes and % are not allowed');
  if (key.startsWith('/')) throw refuse('must be relative');
  if (/^[a-z][a-z0-9+.-]*:/i.test(key)) throw refuse('must not name a scheme');
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..')
      throw refuse('empty, "." and ".." segments are not allowed');
  }
  return key;
}
