import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { sendClientError, toClientError } from '../../../src/http/reply.js';

/** Requests Node's parser refuses; the 400 and the 431 are tested on the real server (client-errors.test.ts). */

const parserError = (code: string) => Object.assign(new Error(`Parse Error: ${code}`), { code });

function fakeSocket(state: { writable?: boolean; destroyed?: boolean; headersSent?: boolean } = {}) {
  const socket = {
    writable: state.writable ?? true,
    destroyed: state.destroyed ?? false,
    _httpMessage: state.headersSent === undefined ? undefined : { headersSent: state.headersSent },
    write: vi.fn(),
    destroy: vi.fn(),
  };
  return socket;
}

describe('toClientError', () => {
  it.each([
    ['HPE_HEADER_OVERFLOW', 'headers_too_large', 431],
    ['HPE_CHUNK_EXTENSIONS_OVERFLOW', 'payload_too_large', 413],
    ['ERR_HTTP_REQUEST_TIMEOUT', 'request_timeout', 408],
    ['HPE_INVALID_HEADER_TOKEN', 'invalid_request', 400],
    ['HPE_INVALID_METHOD', 'invalid_request', 400],
  ])('%s is %s (%i)', (code, expected, status) => {
    expect(toClientError(parserError(code))).toMatchObject({ code: expected, status });
  });
});

describe('sendClientError', () => {
  it('writes a whole HTTP response, then closes the connection', () => {
    const socket = fakeSocket();
    expect(sendClientError(parserError('ERR_HTTP_REQUEST_TIMEOUT'), socket as unknown as Socket)?.code).toBe(
      'request_timeout',
    );
    const written = String(socket.write.mock.calls[0]?.[0]);
    expect(written).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(written).toContain('\r\ncache-control: no-store\r\n');
    const body = written.slice(written.indexOf('\r\n\r\n') + 4);
    expect(written).toContain(`\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
    expect(JSON.parse(body)).toEqual({
      error: { code: 'request_timeout', message: 'The request took too long to arrive' },
    });
    expect(socket.destroy).toHaveBeenCalled();
  });

  it('writes nothing into a response already under way, nor on a socket that cannot take it', () => {
    for (const state of [{ headersSent: true }, { writable: false }]) {
      const socket = fakeSocket(state);
      sendClientError(parserError('HPE_INVALID_METHOD'), socket as unknown as Socket);
      expect(socket.write).not.toHaveBeenCalled();
      expect(socket.destroy).toHaveBeenCalled();
    }
  });

  it('does nothing for a client that is gone', () => {
    const socket = fakeSocket({ destroyed: true });
    expect(sendClientError(parserError('HPE_INVALID_METHOD'), socket as unknown as Socket)).toBeUndefined();
    expect(socket.write).not.toHaveBeenCalled();
  });
});
