/**
 * Everything a client can see of a response but the Date header: its status, every header in
 * order and its body, so two answers that must be indistinguishable can be compared whole.
 */
export async function shape(response: Response) {
  const headers = [...response.headers].filter(([name]) => name !== 'date');
  return { status: response.status, headers, body: await response.text() };
}

export type ResponseShape = Awaited<ReturnType<typeof shape>>;
