/**
 * Retries an assertion until it passes or the deadline is reached, for effects that happen
 * after the response (a server noticing a client went away). Polls; never a fixed sleep.
 */
export async function eventually(assertion: () => Promise<void> | void, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
