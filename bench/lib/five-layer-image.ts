/**
 * A 5-layer image for the pull benchmark and the pull crash trials: busybox, whiteouts and an
 * opaque dir (as in the tests), and two layers of incompressible data, so a pull takes long
 * enough to be interrupted and measured.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildImage, TEST_IMAGE_CONFIG, testImageLayers, type BuiltImage, type LayerSpec } from './oci-image.js';

export function dataLayer(name: string, files: number, bytesEach: number): LayerSpec {
  return {
    async build(d) {
      await mkdir(path.join(d, 'data', name), { recursive: true });
      for (let i = 0; i < files; i++) await writeFile(path.join(d, 'data', name, `f${i}`), randomBytes(bytesEach));
    },
  };
}

/** base, whiteouts/opaque, data-a, data-b, version: 5 layers, ~`mib` MiB of data. */
export function buildFiveLayerImage(layout: string, opts: { mib?: number; version?: string } = {}): Promise<BuiltImage> {
  const mib = opts.mib ?? 16;
  const half = Math.max(1, Math.floor(mib / 2));
  return buildImage(
    layout,
    testImageLayers(opts.version ?? 'v1', [dataLayer('a', 64 * half, 16 * 1024), dataLayer('b', 4 * half, 256 * 1024)]),
    TEST_IMAGE_CONFIG,
  );
}
