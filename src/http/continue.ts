import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1): the client holds its body back until the server
 * says `100 Continue`, so that a request refused on its headers costs no upload. Node says it as
 * soon as the headers are in, before any route has looked at them: an upload announced over the
 * cap, or sent with a bad token, was told to go on, and its 413 or 401 then met a body on the
 * wire. Uploads are told instead when their route starts reading the body (`continueBody`),
 * after authentication, limits and the announced size have passed; every other request is told
 * at once, as Node would, since fastify reads a JSON body before any route code runs.
 */

/** Uploads not told yet, with the response to tell them on. */
const waiting = new WeakMap<IncomingMessage, ServerResponse>();

/** The types whose body the upload route reads itself (routes/images.ts); JSON it does not. */
const UPLOAD_BODY = /^\s*(?:image\/|application\/octet-stream|multipart\/form-data)/i;

/**
 * Read before fastify routes the request, so a guess, safe both ways: a request this misses (a
 * path fastify decodes to the same route, `/v1/imag%65s`) is told at once, as Node would; one
 * it takes for an upload that the route refuses unread (a type fastify has no parser for) is
 * answered without `100 Continue`, and Node then closes the connection, as the client may still
 * send the body it held back.
 */
function isUpload(request: IncomingMessage): boolean {
  if (request.method !== 'POST') return false;
  const url = request.url ?? '';
  const end = url.indexOf('?');
  return (
    (end === -1 ? url : url.slice(0, end)) === '/v1/images' &&
    UPLOAD_BODY.test(request.headers['content-type'] ?? '')
  );
}

/** Hears `checkContinue` (which stops Node's own `100 Continue`) and hands the request on. */
export function deferContinueForUploads(server: Server): void {
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (isUpload(request)) waiting.set(request, response);
    else response.writeContinue();
    server.emit('request', request, response);
  });
}

/** Before an upload's body is read: says `100 Continue` if its client waits for it. */
export function continueBody(request: IncomingMessage): void {
  const response = waiting.get(request);
  if (!response) return;
  waiting.delete(request);
  response.writeContinue();
}
