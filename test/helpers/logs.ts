/**
 * Captured log lines as one searchable text, with every byte array in them decoded: pino writes
 * a Buffer as `{"type":"Buffer","data":[71,69,84,…]}`, so a token held in raw request bytes
 * would never match a plain `toContain` on the line.
 */
export function logText(lines: readonly string[]): string {
  const decoded: string[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      if (value.length > 0 && value.every((item) => Number.isInteger(item) && item >= 0 && item <= 255)) {
        decoded.push(Buffer.from(value as number[]).toString('latin1'));
        return;
      }
      for (const item of value) visit(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const item of Object.values(value)) visit(item);
    }
  };
  for (const line of lines) visit(JSON.parse(line) as unknown);
  return [...lines, ...decoded].join('\n');
}
