import sharp from 'sharp';

export interface RawSharpRun {
  readonly operations: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/**
 * The cold-path baseline: sharp alone, in this process, doing what a w=360 JPEG request costs at
 * its core (decode the same bytes, resize to 360 wide, JPEG encode at pixgate's default quality),
 * with `inFlight` jobs at once. sharp's defaults are kept, as pixgate keeps them.
 */
export async function runRawSharp(
  input: Buffer,
  options: { inFlight: number; seconds: number; width: number; quality: number },
): Promise<RawSharpRun> {
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  let operations = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      await sharp(input).resize(options.width).jpeg({ quality: options.quality }).toBuffer();
      operations++;
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { operations, seconds, perSecond: operations / seconds };
}
