// Prints the library's bundle size: dist/index.js bundled and minified
// with esbuild, livekit-client left out (it is a peer dependency), raw and
// gzipped. `npm run size` after `npm run build`.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const result = await build({
  entryPoints: [new URL('../dist/index.js', import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  platform: 'browser',
  external: ['livekit-client'],
  write: false,
  legalComments: 'none',
});
const code = result.outputFiles[0].contents;
const gz = gzipSync(code, { level: 9 }).length;
console.log(`@voicebroker/client: ${code.length} bytes minified, ${gz} bytes gzipped (esbuild, ESM, without livekit-client)`);
