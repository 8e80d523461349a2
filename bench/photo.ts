import sharp from 'sharp';

/**
 * A photo-like JPEG, made here rather than shipped: smooth colour fields, hard-edged shapes,
 * mid-frequency texture and fine grain, so that it compresses like a photo (about 3 MB at
 * 4000×3000, quality 90) and its variants are the size of real ones (about 24 KB at w=360).
 * A flat colour would decode and encode far faster than any real image and flatter everything.
 * Deterministic (seeded), so two runs measure the same bytes.
 */
export async function synthesizePhoto(width = 4000, height = 3000, seed = 0x9e3779b9): Promise<Buffer> {
  let state = seed >>> 0;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const randomBytes = (length: number) => {
    const bytes = Buffer.alloc(length);
    for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
    return bytes;
  };
  const raw = (channels: 1 | 3, w = width, h = height) => ({ raw: { width: w, height: h, channels } });

  // Large soft colour areas: a coarse random grid, blurred at a tenth of the size, scaled up.
  const tenth = { width: Math.round(width / 10), height: Math.round(height / 10) };
  const coarse = await sharp(randomBytes(24 * 18 * 3), raw(3, 24, 18))
    .resize(tenth.width, tenth.height, { kernel: 'cubic' })
    .blur(4)
    .raw()
    .toBuffer();
  // Texture: a finer grey grid, so areas are not smooth gradients that compress to nothing.
  const texture = await sharp(randomBytes(500 * 375), raw(1, 500, 375))
    .resize(width, height, { kernel: 'cubic' })
    .blur(3)
    .raw()
    .toBuffer();
  const grain = await sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#808080',
      noise: { type: 'gaussian', mean: 128, sigma: 40 },
    },
  })
    .removeAlpha()
    .blur(0.8)
    .raw()
    .toBuffer();

  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`;
  for (let i = 0; i < 60; i++) {
    const colour = `rgb(${Math.floor(random() * 256)},${Math.floor(random() * 256)},${Math.floor(random() * 256)})`;
    const opacity = (0.3 + random() * 0.6).toFixed(2);
    if (i % 2 === 1) {
      svg += `<circle cx="${random() * width}" cy="${random() * height}" r="${50 + random() * 400}" fill="${colour}" fill-opacity="${opacity}"/>`;
    } else {
      svg += `<rect x="${random() * width}" y="${random() * height}" width="${50 + random() * 800}" height="${50 + random() * 600}" fill="${colour}" fill-opacity="${opacity}" transform="rotate(${random() * 90 - 45})"/>`;
    }
  }
  svg += '</svg>';
  const shaped = await sharp(coarse, raw(3, tenth.width, tenth.height))
    .resize(width, height, { kernel: 'cubic' })
    .composite([{ input: Buffer.from(svg) }])
    .removeAlpha()
    .blur(1.5)
    .raw()
    .toBuffer();

  const mixed = Buffer.alloc(shaped.length);
  for (let i = 0; i < mixed.length; i++) {
    const value =
      (shaped[i] ?? 0) + ((grain[i] ?? 128) - 128) * 0.3 + ((texture[(i / 3) | 0] ?? 128) - 128) * 0.4;
    mixed[i] = Math.min(255, Math.max(0, value));
  }
  return sharp(mixed, raw(3)).jpeg({ quality: 90 }).toBuffer();
}
