import { expect } from 'vitest';

/**
 * Everything a client can see of a response but the Date header: its status, every header in
 * order and its body, so two answers that must be indistinguishable can be compared whole.
 */
export async function shape(response: Response) {
  const headers = [...response.headers].filter(([name]) => name !== 'date');
  return { status: response.status, headers, body: await response.text() };
}

export type ResponseShape = Awaited<ReturnType<typeof shape>>;

/** An error in the contract: its status, `Cache-Control: no-store`, and `{ "error": { "code" } }`. */
export async function expectError(response: Response, status: number, code: string): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
}
